//! Hostile input: what a stranger can send, through every door — `ruaflow parse`,
//! `ruaflow run --once`, and the HTTP endpoint of a running `ruaflow run` — must end in a
//! clear rejection within its cap, and leave the process healthy.
//!
//! Every input is generated here, at test time (nothing big is committed). Each case
//! asserts the error names what was refused, the peak memory (max RSS, measured by the
//! kernel for the child process) stays under a budget, the time stays under a budget
//! (generous: they catch the minutes a quadratic or unbounded path took, not
//! milliseconds), and the process is healthy afterwards. Budgets are for the debug build
//! the tests run.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::client::{agent, gzip, post};
use common::Running;

const TOKEN: &str = "hostile-token-91c2";

// ---------------------------------------------------------------------------------------
// Inputs

/// A mail message nested `levels` deep in `message/rfc822` parts.
fn nested_messages(levels: usize) -> Vec<u8> {
    let mut mail = String::from("From: a@example.com\r\nSubject: nested\r\n");
    mail.push_str(&"Content-Type: message/rfc822\r\n\r\n".repeat(levels));
    mail.push_str("Subject: inner\r\n\r\nhello\r\n");
    mail.into_bytes()
}

/// Gzip of `head` followed by `count` copies of `unit`, compressed as it is generated.
fn gzip_stream(head: &str, unit: &[u8], count: usize, tail: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(head.as_bytes()).expect("gzip");
    let chunk = unit.repeat((1 << 16) / unit.len().max(1) + 1);
    let per_chunk = chunk.len() / unit.len();
    let mut left = count;
    while left > 0 {
        let n = left.min(per_chunk);
        encoder.write_all(&chunk[..n * unit.len()]).expect("gzip");
        left -= n;
    }
    encoder.write_all(tail.as_bytes()).expect("gzip");
    encoder.finish().expect("gzip")
}

const REPORT_HEAD: &str = "<feedback><report_metadata><org_name>hostile.example</org_name>\
    <report_id>ID</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range>\
    </report_metadata><policy_published><domain>example.com</domain></policy_published>";

/// A gzipped aggregate report with `count` records, each from a usable or an unusable
/// source address.
fn report_gz(id: &str, count: usize, usable: bool) -> Vec<u8> {
    let ip = if usable { "192.0.2.1" } else { "not-an-address" };
    let record = format!(
        "<record><row><source_ip>{ip}</source_ip><count>1</count></row>\
         <identifiers><header_from>example.com</header_from></identifiers></record>"
    );
    gzip_stream(&REPORT_HEAD.replace("ID", id), record.as_bytes(), count, "</feedback>")
}

/// A local file header or central directory entry of a stored-as-deflate zip member.
fn zip_entry(central: bool, name: &str, crc: u32, compressed: u32, size: u32, offset: u32) -> Vec<u8> {
    let mut out = Vec::new();
    if central {
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // made by
    } else {
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    }
    for v in [20u16, 0, 8, 0, 0x21] {
        out.extend_from_slice(&v.to_le_bytes()); // version, flags, deflate, time, date
    }
    for v in [crc, compressed, size] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // extra
    if central {
        for v in [0u16, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes()); // comment, disk, internal attrs
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out
}

/// A zip archive of one deflated member of `size` zero bytes whose entries may lie:
/// `entries` central directory entries all pointing at the one member, each declaring
/// `declared` bytes.
fn zip_bomb(size: usize, declared: u32, entries: usize) -> Vec<u8> {
    let data = vec![b'<'; size];
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&data).expect("deflate");
    let compressed = deflate.finish().expect("deflate");
    let mut zip = zip_entry(false, "report.xml", crc.sum(), compressed.len() as u32, declared, 0);
    zip.extend_from_slice(&compressed);
    let directory_at = zip.len();
    for i in 0..entries {
        let name = if i == 0 { "report.xml".to_owned() } else { format!("copy{i}.xml") };
        zip.extend(zip_entry(true, &name, crc.sum(), compressed.len() as u32, declared, 0));
    }
    let directory_len = zip.len() - directory_at;
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries as u16, entries as u16] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&(directory_len as u32).to_le_bytes());
    zip.extend_from_slice(&(directory_at as u32).to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip
}

/// An mbox of `count` short messages, none holding a report.
fn mbox_without_reports(count: usize) -> Vec<u8> {
    let mut mbox = Vec::new();
    for i in 0..count {
        let body = "x".repeat(2500);
        mbox.extend_from_slice(
            format!("From a@example.com Mon Jan  1 00:00:00 2024\nSubject: note {i}\n\n{body}\n\n")
                .as_bytes(),
        );
    }
    mbox
}

// ---------------------------------------------------------------------------------------
// Running ruaflow

/// A finished child process, with its peak memory as the kernel counted it.
struct Measured {
    output: Output,
    peak_mib: u64,
    elapsed: Duration,
}

impl Measured {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn within(&self, what: &str, max_mib: u64, max_time: Duration) {
        assert!(
            self.peak_mib <= max_mib,
            "{what}: peak RSS {} MiB over the {max_mib} MiB budget\n{}",
            self.peak_mib,
            self.stderr()
        );
        assert!(self.elapsed <= max_time, "{what}: took {:?}, budget {max_time:?}", self.elapsed);
    }
}

/// Runs `ruaflow ARGS` with stdout captured, measuring its peak RSS through
/// `getrusage(RUSAGE_CHILDREN)` of a small Python parent.
fn measured(args: &[&std::ffi::OsStr], stdin: Option<&Path>) -> Measured {
    const WRAPPER: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:])\n\
        sys.stderr.write('\\npeak_kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)\n";
    let mut command = Command::new("python3");
    command.arg("-c").arg(WRAPPER).arg(env!("CARGO_BIN_EXE_ruaflow")).args(args);
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("stdin")),
        None => Stdio::null(),
    });
    let started = Instant::now();
    let mut output = command.output().expect("python3 runs ruaflow");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let (rest, peak) = stderr.rsplit_once("\npeak_kib=").expect("the wrapper reports the peak");
    let peak_mib = peak.trim().parse::<u64>().expect("peak") / 1024;
    output.stderr = rest.as_bytes().to_vec();
    Measured { output, peak_mib, elapsed }
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// `ruaflow parse --json FILE`, measured.
fn parse_json(file: &Path) -> Measured {
    measured(&[os("parse"), os("--json"), file.as_os_str()], None)
}

/// `ruaflow run --once --offline --db DB INPUT…`, measured.
fn run_once(db: &Path, inputs: &[&Path]) -> Measured {
    let mut args = vec![os("run"), os("--once"), os("--offline"), os("--db"), db.as_os_str()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    measured(&args, None)
}

fn query(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// A `ruaflow run` serving HTTP on loopback, with an `[http]` section of `extra` keys.
struct Endpoint {
    ruaflow: Running,
    port: u16,
    db: PathBuf,
    dir: tempfile::TempDir,
}

impl Endpoint {
    fn start(extra: &str) -> Endpoint {
        Self::start_wrapped(extra, None)
    }

    /// Like `start`, with the binary run by `bash -c "SHELL; exec ruaflow …"`.
    fn start_wrapped(extra: &str, shell: Option<&str>) -> Endpoint {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = common::free_port();
        let config = dir.path().join("ruaflow.toml");
        std::fs::write(
            &config,
            format!("[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nrate_limit_per_minute = 0\n{extra}\n"),
        )
        .expect("config");
        let db = dir.path().join("ruaflow.db");
        let binary = env!("CARGO_BIN_EXE_ruaflow");
        let args = [
            "run",
            "--offline",
            "--config",
            &config.display().to_string(),
            "--db",
            &db.display().to_string(),
        ]
        .map(str::to_owned);
        let mut command = match shell {
            None => {
                let mut c = Command::new(binary);
                c.args(&args);
                c
            }
            Some(shell) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!("{shell}; exec \"$0\" \"$@\"")).arg(binary).args(&args);
                c
            }
        };
        command.env_remove("RUAFLOW_HTTP_TOKEN");
        let ruaflow = Running::spawn(command, dir.path(), "ruaflow");
        let endpoint = Endpoint { ruaflow, port, db, dir };
        common::wait_until(
            "the endpoint answers /healthz",
            Duration::from_secs(30),
            || endpoint.ruaflow.stderr(),
            || endpoint.health().0 == 200,
        );
        endpoint
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `/healthz`: status and body.
    fn health(&self) -> (u16, String) {
        match agent().get(&self.url("/healthz")).call() {
            Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
            Err(ureq::Error::StatusCode(code)) => (code, String::new()),
            Err(_) => (0, String::new()),
        }
    }

    /// Peak RSS so far, MiB.
    fn peak_mib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.ruaflow.pid())).expect("proc status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()).expect("kB") / 1024
    }

    fn post_reports(&self, body: &[u8]) -> (u16, String) {
        post(&agent(), &self.url("/v1/reports"), "application/octet-stream", Some(TOKEN), body)
    }

    fn post_tlsrpt(&self, content_type: &str, body: &[u8]) -> (u16, String) {
        post(&agent(), &self.url("/v1/tlsrpt"), content_type, None, body)
    }
}

// ---------------------------------------------------------------------------------------
// Cases

#[test]
fn messages_nested_to_any_depth_are_refused_by_every_door() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bomb = nested_messages(60_000); // ~2 MB raw
    let bomb_path = tmp.path().join("nested.eml");
    std::fs::write(&bomb_path, &bomb).expect("write");
    let gz_path = tmp.path().join("nested.eml.gz");
    std::fs::write(&gz_path, gzip(&bomb)).expect("write");
    let good = tmp.path().join("good.xml.gz");
    std::fs::write(&good, report_gz("good", 3, true)).expect("write");

    for file in [&bomb_path, &gz_path] {
        let parsed = parse_json(file);
        assert_eq!(parsed.code(), Some(1), "{}", parsed.stderr());
        assert!(parsed.stdout().contains("max_mime_headers"), "{}", parsed.stdout());
        parsed.within("parse of nested messages", 64, Duration::from_secs(30));
    }

    // The good file beside it is stored, and so it is again on a rerun.
    let db = tmp.path().join("ruaflow.db");
    for _ in 0..2 {
        let run = run_once(&db, &[&bomb_path, &good]);
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        run.within("run --once on nested messages", 128, Duration::from_secs(60));
    }
    assert_eq!(query(&db, "SELECT count(*) FROM reports"), 1);
    assert_eq!(query(&db, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%max_mime_headers%'"), 1);

    let endpoint = Endpoint::start("");
    let (status, body) = endpoint.post_reports(&bomb);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_mime_headers"), "{body}");
    let (status, body) = endpoint.post_tlsrpt("application/tlsrpt+gzip", &gzip(&bomb));
    assert_eq!(status, 415, "{body}");
    assert_eq!(endpoint.health().0, 200, "{}", endpoint.ruaflow.stderr());
}

#[test]
fn the_unauthenticated_endpoint_stores_only_tls_reports() {
    let endpoint = Endpoint::start("");
    let tls = br#"{"organization-name":"Strangers Inc.","date-range":{"start-datetime":"2026-01-01T00:00:00Z","end-datetime":"2026-01-01T23:59:59Z"},"contact-info":"a@b.example","report-id":"t1","policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":5,"total-failure-session-count":0}}]}"#;
    let dmarc = REPORT_HEAD.replace("ID", "sneaked") + "</feedback>";
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("dmarc xml", dmarc.clone().into_bytes()),
        ("gzip of dmarc xml", gzip(dmarc.as_bytes())),
        ("zip", zip_bomb(100, 100, 1)),
        (
            "mail message",
            format!("From: a@b\r\nContent-Type: application/json\r\n\r\n{}", String::from_utf8_lossy(tls))
                .into_bytes(),
        ),
        ("mbox", mbox_without_reports(3)),
        ("gzip of gzip", gzip(&gzip(tls))),
        ("garbage", b"GET / HTTP/1.0".to_vec()),
    ];
    for (what, body) in &refused {
        for content_type in ["application/tlsrpt+gzip", "application/tlsrpt+json", "application/octet-stream"]
        {
            let (status, answer) = endpoint.post_tlsrpt(content_type, body);
            assert_eq!(status, 415, "{what} as {content_type}: {answer}");
            assert!(answer.contains("RFC 8460"), "{what}: {answer}");
        }
    }
    let (status, answer) = endpoint.post_tlsrpt("application/tlsrpt+json", br#"{"not":"a report"}"#);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(query(&endpoint.db, "SELECT count(*) FROM envelopes"), 0, "nothing refused was stored");
    assert_eq!(query(&endpoint.db, "SELECT count(*) FROM dead_letters"), 0);

    // What RFC 8460 delivers is stored, plain or gzipped.
    assert_eq!(endpoint.post_tlsrpt("application/tlsrpt+json", tls).0, 200);
    let (status, answer) = endpoint.post_tlsrpt("application/tlsrpt+gzip", &gzip(&tls[..]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        query(&endpoint.db, "SELECT count(*) FROM reports WHERE kind = 'tlsrpt'"),
        1,
        "one report, twice"
    );
    // The same DMARC report needs the token.
    assert_eq!(endpoint.post_reports(dmarc.as_bytes()).0, 200);
}

#[test]
fn memory_stays_bounded_whatever_the_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 256 MiB of `>` inside a report: a run no markup ever breaks.
    let gt = tmp.path().join("gt.xml.gz");
    std::fs::write(&gt, gzip_stream("<feedback><report_metadata><org_name>", b">", 256 << 20, ""))
        .expect("write");
    // A million records with no usable source address: a million warnings.
    let bad = tmp.path().join("bad.xml.gz");
    std::fs::write(&bad, report_gz("bad", 1_000_000, false)).expect("write");
    // A million good records: parse --json must stream them.
    let many = tmp.path().join("many.xml.gz");
    std::fs::write(&many, report_gz("many", 1_000_000, true)).expect("write");

    let parsed = parse_json(&gt);
    assert_eq!(parsed.code(), Some(1));
    assert!(parsed.stdout().contains("max_field_bytes"), "{}", parsed.stdout());
    parsed.within("parse of a run of '>'", 64, Duration::from_secs(60));

    let parsed = measured(&[os("parse"), bad.as_os_str()], None);
    assert_eq!(parsed.code(), Some(0), "{}", parsed.stderr());
    let warnings = parsed.stdout().matches("warning:").count();
    assert!(warnings <= 21, "{warnings} warnings printed");
    assert!(
        parsed.stdout().contains("999980 more warnings"),
        "{}",
        &parsed.stdout()[..2000.min(parsed.stdout().len())]
    );
    parsed.within("parse of a million bad records", 64, Duration::from_secs(120));

    let parsed = parse_json(&many);
    assert_eq!(parsed.code(), Some(0), "{}", parsed.stderr());
    let line: serde_json::Value = serde_json::from_str(parsed.stdout().trim()).expect("one json line");
    assert_eq!(line["record_count"], 1_000_000);
    parsed.within("parse --json of a million records", 96, Duration::from_secs(180));

    let db = tmp.path().join("ruaflow.db");
    let run = run_once(&db, &[&gt, &bad]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.within("run --once on the memory bombs", 128, Duration::from_secs(180));
    let stored = query(&db, "SELECT length(warnings) FROM reports WHERE report_id = 'bad'");
    assert!(stored < 4096, "{stored} bytes of warnings stored");
    assert!(
        run.stderr().matches("report read with a warning").count() <= 21,
        "warnings logged once each, bounded"
    );

    // Four bombs at once against the endpoint: memory is bounded by the caps, not by
    // the number of requests.
    let endpoint = Endpoint::start("");
    let bomb = std::fs::read(&gt).expect("read");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (url, bomb) = (endpoint.url("/v1/reports"), bomb.clone());
            std::thread::spawn(move || post(&agent(), &url, "application/gzip", Some(TOKEN), &bomb))
        })
        .collect();
    for thread in threads {
        let (status, body) = thread.join().expect("client");
        assert!(status == 400 || status == 503, "{status} {body}");
    }
    assert_eq!(endpoint.health().0, 200);
    let peak = endpoint.peak_mib();
    assert!(peak <= 192, "the endpoint peaked at {peak} MiB");
}

#[test]
fn one_input_writes_a_bounded_number_of_bytes() {
    let endpoint = Endpoint::start("");
    let mbox = mbox_without_reports(400); // 1 MiB, 400 messages without a report
    assert!(mbox.len() < 1_100_000);
    let (status, body) = endpoint.post_reports(&mbox);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        query(&endpoint.db, "SELECT count(*) FROM dead_letters"),
        17,
        "16 and one summing up the rest"
    );
    assert_eq!(query(&endpoint.db, "SELECT count(*) FROM dead_letter_inputs"), 1);
    let kept = query(&endpoint.db, "SELECT sum(length(raw)) FROM dead_letter_inputs");
    assert!(kept <= 1 << 20, "{kept} bytes kept");
    assert_eq!(query(&endpoint.db, "SELECT dead_letters FROM envelopes"), 17, "the input's row says so");
    let on_disk: u64 = std::fs::read_dir(endpoint.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(on_disk < 8 << 20, "{on_disk} bytes on disk after one 1 MiB POST");
}

#[test]
fn a_store_that_cannot_write_stops_the_process_and_says_so() {
    // The database may not grow past 3 MiB (`ulimit -f`; SIGXFSZ ignored, so the write
    // fails with EFBIG instead of killing the process).
    let mut endpoint = Endpoint::start_wrapped("", Some("trap '' XFSZ; ulimit -f 3072"));
    let mut answers = Vec::new();
    for i in 0..60 {
        let (status, _) = endpoint.post_reports(&report_gz(&format!("fill-{i}"), 5_000, true));
        answers.push(status);
        if status != 200 {
            break;
        }
    }
    assert!(answers.contains(&503), "the store never failed: {answers:?}");
    // A process that cannot store says why at ERROR, refuses what is still in flight,
    // and stops with a failure status (a supervisor restarts it).
    let status = endpoint.ruaflow.exited_within(Duration::from_secs(90));
    let log = endpoint.ruaflow.stderr();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{log}");
    assert!(log.contains("ERROR") && log.contains("the pipeline cannot store reports"), "{log}");
    assert!(log.contains("storing reports failed"), "the exit names the cause:\n{log}");
}

#[test]
fn many_attributes_are_refused_in_linear_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let attrs: String = (0..1_000_000).map(|i| format!(" a{i}=\"\"")).collect();
    let file = tmp.path().join("attrs.xml");
    std::fs::write(&file, format!("<feedback{attrs}><report_metadata>")).expect("write");
    let parsed = parse_json(&file);
    assert_eq!(parsed.code(), Some(1));
    assert!(
        parsed.stdout().contains("max_field_bytes") || parsed.stdout().contains("max_xml_attributes"),
        "{}",
        parsed.stdout()
    );
    parsed.within("1M attributes", 64, Duration::from_secs(30));
    // Within the event cap, the attribute cap itself: 2,000 short attributes.
    let attrs: String = (0..2_000).map(|i| format!(" a{i}=\"\"")).collect();
    std::fs::write(&file, format!("<feedback{attrs}><report_metadata>")).expect("write");
    let parsed = parse_json(&file);
    assert!(parsed.stdout().contains("max_xml_attributes"), "{}", parsed.stdout());
}

#[test]
fn idle_and_slow_connections_cannot_exhaust_the_endpoint() {
    let endpoint = Endpoint::start("header_timeout_ms = 2000\nbody_timeout_ms = 3000\nmax_connections = 64\nmax_connections_per_client = 48");
    // A thousand connections that send nothing: most are refused at once (one client),
    // the rest time out; the process never runs out of file descriptors.
    let idle: Vec<TcpStream> =
        (0..1000).filter_map(|_| TcpStream::connect(("127.0.0.1", endpoint.port)).ok()).collect();
    assert!(idle.len() > 100, "connections were accepted by the kernel");
    std::thread::sleep(Duration::from_secs(3));
    // After the header timeout the idle ones are closed: reading gives end of stream.
    // Every one has been closed by now: refused at once (503, then closed) or timed
    // out; a read sees the end of the stream (after the 503) or a reset, never a wait.
    for mut stream in idle.into_iter().step_by(25) {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut seen = Vec::new();
        let end = stream.read_to_end(&mut seen);
        let still_open = matches!(&end, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        assert!(!still_open, "a connection is still open after the header timeout");
        let seen = String::from_utf8_lossy(&seen);
        assert!(
            seen.is_empty() || seen.starts_with("HTTP/1.1 503") || seen.starts_with("HTTP/1.1 408"),
            "{seen}"
        );
    }
    assert_eq!(endpoint.health().0, 200, "{}", endpoint.ruaflow.stderr());
    assert_eq!(endpoint.post_reports(&report_gz("after-idle", 1, true)).0, 200);

    // A body that trickles in is cut off after body_timeout_ms with 408.
    let mut slow = TcpStream::connect(("127.0.0.1", endpoint.port)).expect("connect");
    write!(slow, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n")
        .expect("head");
    let started = Instant::now();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
    while started.elapsed() < Duration::from_secs(15) {
        let _ = slow.write_all(b"x");
        let mut buf = [0u8; 1024];
        if let Ok(n) = slow.read(&mut buf) {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answer.contains("\r\n\r\n") {
                break;
            }
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {:?}", started.elapsed());
    assert_eq!(endpoint.health().0, 200);
}

#[test]
fn what_a_directory_holds_cannot_stop_a_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir(&inputs).expect("mkdir");
    std::fs::write(inputs.join("good.xml.gz"), report_gz("dir-good", 2, true)).expect("write");
    assert!(Command::new("mkfifo").arg(inputs.join("pipe.xml")).status().expect("mkfifo").success());
    let outside = tmp.path().join("outside.xml");
    std::fs::write(&outside, REPORT_HEAD.replace("ID", "outside") + "</feedback>").expect("write");
    std::os::unix::fs::symlink(&outside, inputs.join("link.xml")).expect("symlink");
    // A path longer than PATH_MAX, built one relative step at a time.
    let step = "d".repeat(200);
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("cd '{}' && for i in $(seq 25); do mkdir {step} && cd {step} || exit 1; done && echo x > deep.xml", inputs.display()))
        .status()
        .expect("bash");
    assert!(status.success());

    let db = tmp.path().join("ruaflow.db");
    let run = run_once(&db, &[&inputs]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.within("run --once over a hostile directory", 128, Duration::from_secs(60));
    assert_eq!(
        query(&db, "SELECT count(*) FROM reports"),
        1,
        "the good file is stored, the link is not followed"
    );
    let reasons = query(&db, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%fifo%'")
        + query(&db, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%outside the input directories%'")
        + query(&db, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%name too long%'");
    assert_eq!(reasons, 3, "{}", run.stderr());

    // A watching run with the FIFO present still stops on SIGTERM.
    let mut command = common::ruaflow();
    command.args(["run", "--offline", "--db"]).arg(&db).arg(&inputs);
    let mut watching = Running::spawn(command, tmp.path(), "watch");
    std::thread::sleep(Duration::from_secs(3));
    assert!(watching.terminate(), "{}", watching.stderr());
}

#[test]
fn zip_amplification_is_refused_before_it_costs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 64 entries all pointing at one member that inflates to 200 MiB.
    let overlapping = tmp.path().join("overlap.zip");
    std::fs::write(&overlapping, zip_bomb(200 << 20, 200 << 20, 64)).expect("write");
    // One member that declares 100 bytes and inflates to 200 MiB.
    let lying = tmp.path().join("lying.zip");
    std::fs::write(&lying, zip_bomb(200 << 20, 100, 1)).expect("write");

    let parsed = parse_json(&overlapping);
    assert!(parsed.stdout().contains("entries overlap"), "{}", parsed.stdout());
    parsed.within("overlapping zip entries", 64, Duration::from_secs(20));
    let parsed = parse_json(&lying);
    assert!(parsed.stdout().contains("declared size"), "{}", parsed.stdout());
    parsed.within("a zip member larger than declared", 64, Duration::from_secs(20));

    let endpoint = Endpoint::start("");
    let (status, body) = endpoint.post_reports(&std::fs::read(&overlapping).expect("read"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(endpoint.health().0, 200);
}

#[test]
fn report_text_cannot_act_on_a_terminal_or_forge_a_log_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let evil = "\u{1b}]8;;http://evil.example\u{7}click\u{1b}]8;;\u{7}\r\u{9b}31m\u{202e}moc.elpmaxe";
    let xml = REPORT_HEAD.replace("hostile.example", evil).replace("ID", "inject")
        + "<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>\
           <disposition>none</disposition></policy_evaluated></row></record></feedback>";
    let file = tmp.path().join("evil\n2026-01-01T00:00:00Z ERROR forged.xml");
    std::fs::write(&file, &xml).expect("write");

    let parsed = measured(&[os("parse"), file.as_os_str()], None);
    let out = parsed.stdout();
    assert!(!out.chars().any(|c| ruaflow_schema::text::is_unsafe_char(c) && c != '\n'), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(out.contains("\\u{1b}]8;;http://evil.example"), "{out:?}");

    // The file name reaches a log line (an unreadable input): it stays one line.
    std::fs::write(&file, b"not a report").expect("write");
    let store = tempfile::tempdir().expect("tempdir");
    let run = run_once(&store.path().join("ruaflow.db"), &[tmp.path()]);
    let log = run.stderr();
    assert!(log.contains("evil\\u{a}2026-01-01T00:00:00Z ERROR forged.xml"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")), "{log}");
}
