//! Helpers shared by the end-to-end tests that run `ruaflow` as a long-lived process.
#![allow(dead_code)] // each test binary uses the helpers it needs

pub mod client;
pub mod cluster;
pub mod dnsmasq;
pub mod dovecot;
pub mod oauth2;
pub mod smtp;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ruaflow binary under test.
pub fn ruaflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ruaflow"))
}

/// Runs `ruaflow ARGS…` to completion.
pub fn run_args(args: &[&str]) -> std::process::Output {
    ruaflow().args(args).output().expect("run ruaflow")
}

/// The stdout of a run that must have succeeded (its stderr in the panic otherwise).
pub fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "exit {:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// A path as a command-line argument.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The shared corpus of real reports (`../shared/corpus`).
pub fn corpus() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(dir.is_dir(), "../shared/corpus is missing");
    dir
}

/// Sends SIGTERM and returns whether the process exited 0 within 30 s (it is killed
/// otherwise).
pub fn terminate(child: impl Into<Child>) -> bool {
    let mut child = child.into();
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed and reaped when dropped: a test that fails part-way
/// leaves nothing running. Used as the `Child` it holds.
pub struct Guarded(Option<Child>);

impl Guarded {
    pub fn new(child: Child) -> Self {
        Guarded(Some(child))
    }
}

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a guarded child is held until dropped or taken")
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a guarded child is held until dropped or taken")
    }
}

impl From<Guarded> for Child {
    fn from(mut guarded: Guarded) -> Child {
        guarded.0.take().expect("a guarded child is held until dropped or taken")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        reap(self.0.take());
    }
}

/// Kills and reaps a process a test left running (on failure), so no server outlives it.
pub fn reap(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls `check` until it holds or `timeout` passes; panics with `what` and `logs`.
pub fn wait_until(what: &str, timeout: Duration, logs: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; logs:\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `ruaflow` (`run`, `ingest`, `process`…) with stdout and stderr in files
/// (`DIR/NAME.out`, `DIR/NAME.log`); killed and reaped on drop unless it was stopped.
pub struct Running {
    /// `None` once stopped (or reaped by the test itself).
    pub child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// Spawns `command` with RUST_LOG=info, no stdin, its output in `dir`.
    pub fn spawn(mut command: Command, dir: &Path, name: &str) -> Running {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.log"));
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn ruaflow");
        Running { child: Some(child), stdout, stderr }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits up to `timeout` for the process to exit on its own; its status, or `None`
    /// when it is still running.
    pub fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGTERM and returns whether the process exited 0 within 30 s.
    pub fn terminate(&mut self) -> bool {
        terminate(self.child.take().expect("running"))
    }

    /// Waits for the process to exit by itself and returns whether it exited 0; panics
    /// with its log when it is still running after `timeout` (it is killed then).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                reap(Some(child));
                panic!("still running after {timeout:?}; log:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        reap(self.child.take());
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("addr").port()
}

/// Totals of a store that must come out the same however often, and by whichever path,
/// data was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub reports: u64,
    pub records: u64,
    pub messages: u64,
    pub aggregated: u64,
    pub selector_messages: u64,
    pub tls_policies: u64,
    pub tls_failures: u64,
    pub dead_letters: u64,
    pub failure_reports: u64,
}

/// The totals of an embedded store (a SQLite file).
pub fn sqlite_totals(db: &std::path::Path) -> Totals {
    try_sqlite_totals(db).expect("totals")
}

/// The totals of a store that may still be being created (its file exists
/// before its migrations have run): an error until the tables are there.
pub fn try_sqlite_totals(db: &std::path::Path) -> rusqlite::Result<Totals> {
    // Opening would create the file: wait for the writer to create it.
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(db, flags)?;
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM reports), (SELECT COUNT(*) FROM dmarc_records),
                (SELECT COALESCE(SUM(count),0) FROM dmarc_records), (SELECT COALESCE(SUM(messages),0) FROM agg_source_day),
                (SELECT COALESCE(SUM(messages),0) FROM agg_selector_day), (SELECT COUNT(*) FROM tlsrpt_policies),
                (SELECT COUNT(*) FROM tlsrpt_failures), (SELECT COUNT(*) FROM dead_letters),
                (SELECT COUNT(*) FROM failure_reports)",
        [],
        |r| {
            Ok(Totals {
                reports: r.get(0)?,
                records: r.get(1)?,
                messages: r.get(2)?,
                aggregated: r.get(3)?,
                selector_messages: r.get(4)?,
                tls_policies: r.get(5)?,
                tls_failures: r.get(6)?,
                dead_letters: r.get(7)?,
                failure_reports: r.get(8)?,
            })
        },
    )
}

/// A minimal RFC 4180 reader: records of fields (quoted fields may hold commas,
/// doubled quotes and line breaks).
pub fn csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            (false, '\n') => panic!("bare LF line end in CSV"),
            (false, c) => field.push(c),
        }
        if !quoted && c == '\r' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(field.is_empty() && row.is_empty(), "CSV does not end with CRLF");
    rows
}
