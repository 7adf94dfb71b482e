//! The systemd units under `dist/`: `systemd-analyze verify` accepts them as they are
//! (with this build in place of /usr/local/bin/ruaflow), and their `ExecStart` command
//! lines, run with temporary directories in place of /etc/ruaflow and /var/lib/ruaflow,
//! do what the units promise: the one-shot stores the inbox and exits 0, the service
//! watches, logs one JSON line per stored report, and stops cleanly on SIGTERM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{corpus, ok, run_args, s, wait_until, Running};

fn dist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist")
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(dist())
        .expect("dist/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "timer"))
        .collect();
    units.sort();
    assert!(units.len() >= 3, "dist/ holds the service, the one-shot service and its timer: {units:?}");
    units
}

/// The unit's text with this build in place of the installed binary.
fn with_this_build(unit: &Path) -> String {
    std::fs::read_to_string(unit)
        .expect("read unit")
        .replace("/usr/local/bin/ruaflow", env!("CARGO_BIN_EXE_ruaflow"))
}

#[test]
fn systemd_accepts_the_units() {
    let Some(analyze) =
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].iter().find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (tests/run installs systemd)"
        );
        eprintln!("skipped: no systemd-analyze");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut copies = Vec::new();
    for unit in units() {
        let copy = dir.path().join(unit.file_name().expect("name"));
        std::fs::write(&copy, with_this_build(&unit)).expect("write unit");
        copies.push(copy);
    }
    let out = Command::new(analyze).arg("verify").args(&copies).output().expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr);
    // Unknown keys are only warned about: any word from it is a failure.
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    for unit in units().iter().filter(|u| u.extension().is_some_and(|e| e == "service")) {
        let text = std::fs::read_to_string(unit).expect("read");
        for hardening in
            ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet="]
        {
            assert!(text.lines().any(|l| l == hardening), "{}: no {hardening}", unit.display());
        }
    }
}

/// The ExecStart command of a unit, with the installed paths moved into `root`.
fn exec_start(unit: &str, root: &Path) -> Command {
    let text = with_this_build(&dist().join(unit))
        .replace("/etc/ruaflow", s(&root.join("etc")))
        .replace("/var/lib/ruaflow", s(&root.join("state")));
    let line = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let mut words = line.split_whitespace();
    let mut command = Command::new(words.next().expect("program"));
    command.args(words);
    command
}

/// A root with the config (the example, as the install steps copy it, with reverse DNS
/// off: a test has no resolver to ask) and an inbox.
fn install(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    let example =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ruaflow.example.toml"))
            .expect("example config");
    assert!(example.contains("\noffline = false"));
    std::fs::write(root.join("etc/ruaflow.toml"), example.replace("\noffline = false", "\noffline = true"))
        .expect("config");
    let inbox = root.join("state/inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    inbox
}

fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect()
}

fn stored_lines(stderr: &str) -> usize {
    json_lines(stderr).iter().filter(|l| l["message"] == "report stored").count()
}

#[test]
fn the_one_shot_unit_stores_the_inbox_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inbox = install(dir.path());
    let google = corpus().join("parsedmarc/aggregate");
    for entry in std::fs::read_dir(&google).expect("corpus dir").take(10) {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, inbox.join(path.file_name().expect("name"))).expect("copy");
    }
    let out = exec_start("ruaflow-once.service", dir.path()).env_remove("RUST_LOG").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&stderr);
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()), "{stderr}");
    assert_eq!(stored_lines(&stderr), 0, "a one-shot bulk load is summed up, not logged per report");
    let db = dir.path().join("state/ruaflow.db");
    let report: Value =
        serde_json::from_str(&ok(run_args(&["report", "--db", s(&db), "--json"]))).expect("report JSON");
    assert!(report["totals"]["dmarc_reports"].as_u64() > Some(0));
}

#[test]
fn the_service_unit_watches_and_logs_each_report_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inbox = install(dir.path());
    std::fs::copy(corpus().join("dmarc-report-converter/test.xml"), inbox.join("first.xml")).expect("copy");
    let mut running = Running::spawn(exec_start("ruaflow.service", dir.path()), dir.path(), "service");
    // Running::spawn sets RUST_LOG=info; the unit's default level shows the same lines.
    wait_until(
        "the first report's line",
        Duration::from_secs(60),
        || running.stderr(),
        || {
            running.stderr().contains("watching inputs for new reports")
                && stored_lines(&running.stderr()) == 1
        },
    );
    let tls = corpus().join("parsedmarc/smtp_tls");
    let tls_file =
        std::fs::read_dir(&tls).expect("tls dir").next().expect("a TLS report").expect("entry").path();
    std::fs::copy(&tls_file, inbox.join("second.json")).expect("copy");
    wait_until(
        "the new report's line",
        Duration::from_secs(60),
        || running.stderr(),
        || stored_lines(&running.stderr()) == 2,
    );
    assert!(running.terminate(), "SIGTERM stops the service with status 0: {}", running.stderr());
    let lines = json_lines(&running.stderr());
    let stored: Vec<&Value> = lines.iter().filter(|l| l["message"] == "report stored").collect();
    assert_eq!(stored[0]["kind"], "dmarc");
    assert_eq!(stored[0]["report_id"], "1.id.0");
    assert!(stored[0]["origin"].as_str().is_some_and(|o| o.ends_with("first.xml")));
    assert!(stored[0]["records"].as_u64() > Some(0) && stored[0]["messages"].as_u64() > Some(0));
    assert_eq!(stored[1]["kind"], "tlsrpt");
    assert!(stored[1]["sessions"].is_u64(), "{}", stored[1]);
}
