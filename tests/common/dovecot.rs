//! A real Dovecot for the IMAP tests (tests/imap.rs, tests/distributed_sources.rs), started
//! by `tests/services/dovecot` on a loopback port (root and dovecot-imapd needed), and the
//! mails delivered into it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{corpus, Running};

const SERVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/dovecot");

/// A Dovecot started by the service script, stopped on drop.
pub struct Dovecot {
    pub dir: PathBuf,
    pub port: u16,
}

impl Dovecot {
    pub fn start(parent: &Path) -> Dovecot {
        Self::start_with(parent, &[])
    }

    /// Like `start`, with `extra` arguments to the service script (`--tls`).
    pub fn start_with(parent: &Path, extra: &[&str]) -> Dovecot {
        let dir = parent.join("dovecot");
        let port = super::free_port();
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

    pub fn maildir(&self) -> PathBuf {
        self.dir.join("mail")
    }

    /// Delivers a message the way an MDA does: a file in `new/`, owned by the mail user.
    pub fn deliver(&self, name: &str, bytes: &[u8]) {
        let tmp = self.maildir().join("tmp").join(name);
        std::fs::write(&tmp, bytes).expect("write message");
        let status = Command::new("chown").arg("dovecot:dovecot").arg(&tmp).status().expect("chown");
        assert!(status.success(), "chown dovecot {}", tmp.display());
        std::fs::rename(&tmp, self.maildir().join("new").join(name)).expect("deliver");
    }

    /// Messages in a folder on disk (`""` is INBOX; Maildir++: `ruaflow/processed` is
    /// `.ruaflow.processed`), `cur/` and `new/` together.
    pub fn count(&self, folder: &str) -> usize {
        let base = if folder.is_empty() { self.maildir() } else { self.maildir().join(format!(".{folder}")) };
        ["cur", "new"]
            .iter()
            .map(|sub| std::fs::read_dir(base.join(sub)).map(|d| d.count()).unwrap_or(0))
            .sum()
    }

    /// (INBOX, processed, failures, ignored, invalid).
    pub fn folders(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.count(""),
            self.count("ruaflow.processed"),
            self.count("ruaflow.failures"),
            self.count("ruaflow.ignored"),
            self.count("ruaflow.invalid"),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// Kills (SIGKILL) this Dovecot's per-connection `imap` processes, the way a server
    /// restart or crash drops its clients, and returns how many there were. Only children
    /// of this instance's master (`run/master.pid`), never another Dovecot's.
    pub fn kill_sessions(&self) -> usize {
        let master = std::fs::read_to_string(self.dir.join("run/master.pid")).expect("read master.pid");
        let master = master.trim();
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ppid …`; comm may hold spaces, hence the last ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let comm = &stat[open + 1..close];
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            if comm == "imap" && ppid == Some(master) {
                let pid = stat[..open].trim();
                let status = Command::new("kill").args(["-KILL", pid]).status().expect("kill");
                killed += usize::from(status.success());
            }
        }
        killed
    }

    /// The `[[imap]]` keys that reach this Dovecot in plain text.
    pub fn plain_section(&self) -> String {
        format!("host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n", self.port)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(SERVICE).arg("stop").arg(&self.dir).status();
    }
}

/// Writes to `path` a config with one `[[imap]]` section: the test user, polled every
/// second, `section` (host, port, tls…, possibly an `[imap.oauth2]` table last), and —
/// unless `section` says how to log in — its password from the environment (see
/// `with_secrets`).
pub fn write_imap_config(path: &Path, section: &str) {
    let login = section.lines().any(|l| l.starts_with("password =") || l.starts_with("auth ="));
    let password = if login { "" } else { "password = { env = \"TEST_IMAP_PASSWORD\" }\n" };
    std::fs::write(
        path,
        format!("[[imap]]\nusername = \"ruaflow\"\npoll_interval_secs = 1\n{password}{section}"),
    )
    .expect("write config");
}

/// `command` with the secrets the test configs name: the test user's password
/// (`TEST_IMAP_PASSWORD`) and the OAuth2 client secret (`TEST_CLIENT_SECRET`).
pub fn with_secrets(command: &mut Command) -> &mut Command {
    command.env("TEST_IMAP_PASSWORD", "ruaflow-test").env("TEST_CLIENT_SECRET", super::oauth2::CLIENT_SECRET)
}

/// `ruaflow run` (watching) on a config with `section`, its log `ruaflow-{run}.log` in
/// `dir`; killed on drop unless stopped.
pub fn run_ruaflow(dir: &Path, section: &str, db: &Path, run: usize) -> Running {
    let config = dir.join("ruaflow.toml");
    write_imap_config(&config, section);
    let mut c = super::ruaflow();
    c.args(["run", "--offline", "--db"]).arg(db).arg("--config").arg(&config);
    with_secrets(&mut c);
    Running::spawn(c, dir, &format!("ruaflow-{run}"))
}

/// `ruaflow run --once` on a config with `section` (and no other input), its log
/// `ruaflow-{run}.log` in `dir`: waits for it to exit (60 s at most) and returns whether
/// it exited 0, and its stdout and stderr.
pub fn run_ruaflow_once(dir: &Path, section: &str, db: &Path, run: usize) -> (bool, String, String) {
    let config = dir.join("ruaflow.toml");
    write_imap_config(&config, section);
    let mut c = super::ruaflow();
    c.args(["run", "--once", "--offline", "--db"]).arg(db).arg("--config").arg(&config);
    with_secrets(&mut c);
    let mut running = Running::spawn(c, dir, &format!("ruaflow-{run}"));
    let ok = running.wait_exit(Duration::from_secs(60));
    (ok, running.stdout(), running.stderr())
}

/// The file name of the `n`th delivered message in a maildir.
pub fn maildir_name(n: usize) -> String {
    format!("1700000000.M{n}P1.ruaflow-test")
}

/// A mail holding no report.
pub const PLAIN: &str = "From: alice@example.com\r\nTo: dmarc@example.net\r\nSubject: lunch?\r\nMessage-ID: <plain@example.com>\r\nContent-Type: text/plain\r\n\r\nNo report in here.\r\n";

/// A report mail whose gzip attachment is truncated: Report-ID `{tag}-1`, Message-ID
/// `<{tag}@example.org>`.
pub fn broken_mail(tag: &str) -> String {
    format!(
        "From: noreply-dmarc@example.org\r\nTo: dmarc@example.net\r\nSubject: Report domain: example.net Submitter: example.org Report-ID: {tag}-1\r\nMessage-ID: <{tag}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=example.org!example.net!1!2.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA0tMTAQA\r\n--b--\r\n"
    )
}

/// A small DMARC aggregate report mail, its XML as an uncompressed `application/xml`
/// attachment: Report-ID `{tag}`, Message-ID `<{tag}@example.org>`.
pub fn report_mail(tag: &str) -> String {
    let xml = format!(
        "<?xml version=\"1.0\"?>\r\n<feedback><report_metadata><org_name>example.org</org_name><email>noreply-dmarc@example.org</email><report_id>{tag}</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata><policy_published><domain>example.net</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.net</header_from></identifiers><auth_results><spf><domain>example.net</domain><result>pass</result></spf></auth_results></record></feedback>\r\n"
    );
    format!(
        "From: noreply-dmarc@example.org\r\nTo: dmarc@example.net\r\nSubject: Report domain: example.net Submitter: example.org Report-ID: {tag}\r\nMessage-ID: <{tag}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/xml\r\nContent-Disposition: attachment; filename=example.org!example.net!1700000000!1700086399!{tag}.xml\r\n\r\n{xml}--b--\r\n"
    )
}

/// The report mails (`.eml`) of the corpus's `parsedmarc/{sub}` folders, `subs` in order
/// and each folder sorted by name, as (file name, bytes).
pub fn corpus_mails(subs: &[&str]) -> Vec<(String, Vec<u8>)> {
    let root = corpus().join("parsedmarc");
    let mut mails = Vec::new();
    for sub in subs {
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
    mails
}
