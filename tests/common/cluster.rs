//! Helpers of the distributed end-to-end tests (tests/distributed.rs,
//! tests/distributed_sources.rs): the Kafka and ClickHouse that `tests/services/up`
//! started, ClickHouse's totals, and the `ruaflow` commands of the distributed pipeline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{ruaflow, sqlite_totals, Totals};

/// The services `tests/run` started, or `None` (test skipped) outside CI.
pub struct Services {
    pub kafka: String,
    pub clickhouse: String,
}

impl Services {
    /// A name of the test's own for its topic, consumer group and database
    /// (`unique(prefix)`), and the URL of that database.
    pub fn database(&self, prefix: &str) -> (String, String) {
        let name = unique(prefix);
        let url = format!("{}/{name}", self.clickhouse);
        (name, url)
    }

    /// Like `database`, with the database created (`ruaflow migrate`); only the name.
    pub fn migrated(&self, prefix: &str) -> String {
        let (name, url) = self.database(prefix);
        migrate(&url);
        name
    }
}

/// The services from RUAFLOW_TEST_KAFKA and RUAFLOW_TEST_CLICKHOUSE; without them `None`
/// with a message (the test is skipped), except with CI=true, where that is a failure.
pub fn services() -> Option<Services> {
    match (std::env::var("RUAFLOW_TEST_KAFKA"), std::env::var("RUAFLOW_TEST_CLICKHOUSE")) {
        (Ok(kafka), Ok(clickhouse)) => Some(Services { kafka, clickhouse }),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "RUAFLOW_TEST_KAFKA / RUAFLOW_TEST_CLICKHOUSE are not set: run the tests with tests/run, which starts Kafka and ClickHouse"
            );
            eprintln!(
                "skipped: no Kafka/ClickHouse (run tests/run, or tests/services/up DIR and export DIR/env)"
            );
            None
        }
    }
}

/// A name no other test (or earlier run) uses: topic, group and database.
pub fn unique(name: &str) -> String {
    format!("{name}_{}_{}", std::process::id(), entropy() % 1_000_000_000)
}

/// Nanoseconds of the wall clock: not a time, a seed that differs between runs.
#[expect(clippy::disallowed_methods, reason = "a seed, not a timestamp")]
fn entropy() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos()
}

/// ClickHouse over HTTP, each row counted once (FINAL).
pub fn clickhouse_totals(url: &str, db: &str) -> Result<Totals, String> {
    let sql = format!(
        "SELECT (SELECT count() FROM {db}.reports FINAL), (SELECT count() FROM {db}.dmarc_records FINAL),
                (SELECT sum(count) FROM {db}.dmarc_records FINAL), (SELECT sum(messages) FROM {db}.agg_source_day FINAL),
                (SELECT sum(messages) FROM {db}.agg_selector_day FINAL), (SELECT count() FROM {db}.tlsrpt_policies FINAL),
                (SELECT count() FROM {db}.tlsrpt_failures FINAL), (SELECT count() FROM {db}.dead_letters FINAL),
                (SELECT count() FROM {db}.failure_reports FINAL)
         FORMAT TSV"
    );
    let text = clickhouse_query(url, &sql)?;
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().map_err(|e| format!("{e}: {text}")))
        .collect::<Result<_, _>>()?;
    let [reports, records, messages, aggregated, selector_messages, tls_policies, tls_failures, dead_letters, failure_reports] =
        v[..]
    else {
        return Err(format!("unexpected answer {text:?}"));
    };
    Ok(Totals {
        reports,
        records,
        messages,
        aggregated,
        selector_messages,
        tls_policies,
        tls_failures,
        dead_letters,
        failure_reports,
    })
}

/// The answer of ClickHouse's HTTP interface at `url` to `sql`.
pub fn clickhouse_query(url: &str, sql: &str) -> Result<String, String> {
    let mut response = ureq::post(url).send(sql).map_err(|e| e.to_string())?;
    response.body_mut().read_to_string().map_err(|e| e.to_string())
}

/// The embedded pipeline on the same inputs, as the reference.
pub fn embedded_totals(inputs: &[&Path]) -> Totals {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ref.db");
    let out =
        ruaflow().args(["run", "--once", "--offline", "--db"]).arg(&db).args(inputs).output().expect("run");
    assert!(out.status.success(), "embedded run failed: {}", String::from_utf8_lossy(&out.stderr));
    sqlite_totals(&db)
}

/// `ruaflow migrate` of the database in `url`.
pub fn migrate(url: &str) {
    let out = ruaflow().args(["migrate", "--clickhouse", url]).output().expect("migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A `ruaflow process` command from `topic` on `kafka` into `clickhouse` (URL with the
/// database) in consumer group `group`, committing every 200 ms and, with
/// `batch_records`, in batches of that many records at most (many inserts and offset
/// commits per run). Its output is left to the caller.
pub fn process_command(
    kafka: &str,
    topic: &str,
    clickhouse: &str,
    group: &str,
    batch_records: Option<u32>,
) -> Command {
    let mut c = ruaflow();
    c.args(["process", "--kafka", kafka, "--topic", topic, "--clickhouse", clickhouse, "--group", group])
        .args(["--listen", "127.0.0.1:0"]);
    if let Some(records) = batch_records {
        c.arg("--batch-records").arg(records.to_string());
    }
    c.args(["--batch-ms", "200"]);
    c
}

/// Polls ClickHouse until the totals equal `want` (Ok) or `timeout` passes (Err with the
/// last totals seen). Errors while polling (ClickHouse restarting) are retried.
pub fn wait_for(url: &str, db: &str, want: Totals, timeout: Duration) -> Result<Totals, String> {
    let deadline = Instant::now() + timeout;
    let mut last = Err("nothing read yet".to_owned());
    while Instant::now() < deadline {
        last = clickhouse_totals(url, db);
        if last.as_ref() == Ok(&want) {
            return Ok(want);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!("after {timeout:?}: {last:?}, want {want:?}"))
}

/// A Kafka or ClickHouse of a test's own (`tests/services/kafka` or
/// `tests/services/clickhouse` in `dir`), so that stopping it disturbs no other test;
/// stopped on drop.
pub struct OwnService {
    script: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnService {
    /// Starts service `name` ("kafka" or "clickhouse") on a port PORT (Kafka's broker,
    /// ClickHouse's HTTP interface) with PORT+1 free as well (the controller, the native
    /// protocol). Both lie below Linux's ephemeral range (32768-60999), as in
    /// `tests/services/up`, so that no outgoing connection takes one while the service is
    /// stopped for a while.
    pub fn start(name: &str, dir: PathBuf) -> OwnService {
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let mut seed = entropy() ^ std::process::id() | 1; // xorshift never leaves 0
        let port = (0..1000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                20_000 + (seed % 12_000) as u16
            })
            .find(|&port| free(port) && free(port + 1))
            .expect("no free port pair below 32000");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services").join(name);
        let service = OwnService { script, dir, port };
        service.service("start");
        service
    }

    /// Runs the service script's `cmd` ("start" or "stop"; the data in `dir` is kept).
    pub fn service(&self, cmd: &str) {
        let mut c = Command::new(&self.script);
        c.arg(cmd).arg(&self.dir);
        if cmd == "start" {
            c.arg(self.port.to_string());
        }
        let out = c.output().expect("service script");
        let name = self.script.file_name().expect("name").to_string_lossy();
        assert!(
            out.status.success(),
            "{name} {cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `127.0.0.1:PORT`: Kafka's bootstrap server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnService {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("stop").arg(&self.dir).output();
    }
}
