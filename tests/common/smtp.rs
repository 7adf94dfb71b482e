//! A real SMTP submission server for the email alert tests (processor/tests/email.rs,
//! tests/email_alerts.rs): Debian's aiosmtpd started by `tests/services/smtp` on a
//! loopback port, STARTTLS with a private CA and AUTH by default, and what it received.
#![allow(dead_code)] // each test binary uses the helpers it needs

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The account `tests/services/smtp` accepts.
pub const USER: &str = "ruaflow";
/// Its password.
pub const PASSWORD: &str = "smtp-test";

/// The service script, found from the crate the test belongs to (the repository root or
/// `processor/`).
fn service() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/services/smtp"))
        .find(|path| path.is_file())
        .expect("tests/services/smtp above the crate")
}

/// A running test SMTP server, stopped on drop.
pub struct SmtpServer {
    pub dir: PathBuf,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

/// One message as the server received it.
pub struct Received {
    /// `mail_from`, `rcpt_tos`, `user` (the login), `tls`.
    pub envelope: Value,
    /// The message as it came in DATA.
    pub raw: Vec<u8>,
}

impl SmtpServer {
    /// Starts a server; `args` as the service script takes them (`--tls`, `--plain`,
    /// `--no-auth`; STARTTLS with AUTH by default). Fails the test when it cannot.
    pub fn start(args: &[&str]) -> SmtpServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("smtp");
        let port = free_port();
        let out = Command::new(service())
            .args(["start".as_ref(), dir.as_os_str(), port.to_string().as_ref()])
            .args(args)
            .output()
            .expect("run tests/services/smtp");
        assert!(
            out.status.success(),
            "cannot start the test SMTP server (apt-get install python3-aiosmtpd): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmtpServer { dir, port, _tmp: tmp }
    }

    /// The private CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Writes `password` (and a newline, as an editor would) to a file for the client,
    /// and returns its path.
    pub fn password_file(&self, password: &str) -> PathBuf {
        let path = self.dir.join("password");
        std::fs::write(&path, format!("{password}\n")).expect("write password file");
        path
    }

    /// The messages received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(self.dir.join("messages"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        metas.retain(|p| p.extension().is_some_and(|e| e == "json"));
        metas.sort();
        metas
            .iter()
            .map(|meta| Received {
                envelope: serde_json::from_slice(&std::fs::read(meta).expect("read envelope")).expect("json"),
                raw: std::fs::read(meta.with_extension("eml")).expect("read message"),
            })
            .collect()
    }

    /// `ok USER MECHANISM` / `refused USER MECHANISM`, one per AUTH attempt.
    pub fn auth_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The server's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = Command::new(service()).arg("stop").arg(&self.dir).status();
    }
}

/// A port on 127.0.0.1 with nothing listening: bound, then released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
