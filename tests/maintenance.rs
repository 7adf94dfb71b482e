//! Keeping a store: `ruaflow prune` and `[retention]` (SQLite, and ClickHouse 18.16
//! through partition drops), `ruaflow backup` while `ruaflow run` writes.
//!
//! Retention counts days back from today, so the cuts are computed here from the clock
//! and placed between report days of ../shared/corpus, whose reports span 1979 to 2025.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use common::{cluster, corpus, ok, ruaflow, run_args as run, s, sqlite_totals, wait_until, Running};

const DAY: i64 = 86_400;

fn today() -> i64 {
    ruaflow_schema::clock::now().div_euclid(DAY) * DAY
}

fn day_of(date: &str) -> i64 {
    let parts: Vec<u32> = date.split('-').map(|p| p.parse().expect("number")).collect();
    ruaflow_schema::time::days_from_civil(i64::from(parts[0]), parts[1], parts[2]) * DAY
}

/// The age in days that keeps report days from `date` (YYYY-MM-DD) on.
fn age_keeping(date: &str) -> u32 {
    ((today() - day_of(date)) / DAY + 1) as u32
}

fn report(db: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["report", "--db", s(db), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(run(&args))).expect("report JSON")
}

fn messages(report: &Value) -> u64 {
    report["totals"]["messages"].as_u64().expect("messages")
}

fn record_days(db: &Path) -> Vec<String> {
    ok(run(&["export", "--db", s(db), "--what", "records", "--format", "jsonl"]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["day"].as_str().expect("day").to_owned())
        .collect()
}

fn corpus_store(dir: &Path) -> PathBuf {
    let db = dir.join("store.db");
    ok(run(&["run", "--once", "--offline", "--db", s(&db), s(&corpus())]));
    db
}

/// Records older than the records age go; reports and aggregates stay until the
/// aggregates age, so the report's figures for those days do not change.
#[test]
fn prune_deletes_each_tier_at_its_age() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = corpus_store(dir.path());
    let (records_from, aggregates_from) = ("2024-01-01", "2020-01-01");
    let all = report(&db, &[]);
    let kept = report(&db, &["--since", aggregates_from]);
    let recent = report(&db, &["--since", records_from]);
    assert!(
        messages(&all) > messages(&kept) && messages(&kept) > messages(&recent),
        "the cuts split the corpus"
    );
    assert!(record_days(&db).iter().any(|d| d.as_str() < records_from));

    // Dead letters age by when they arrived: make the corpus's arrive in 2023.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let arrived = day_of("2023-06-01");
    conn.execute("UPDATE dead_letters SET received_at = ?1", [arrived]).expect("age dead letters");
    conn.execute("UPDATE dead_letter_inputs SET received_at = ?1", [arrived]).expect("age inputs");
    drop(conn);
    let (records_days, aggregates_days) = (age_keeping(records_from), age_keeping(aggregates_from));
    let out = ok(run(&[
        "prune",
        "--db",
        s(&db),
        "--records-days",
        &records_days.to_string(),
        "--aggregates-days",
        &aggregates_days.to_string(),
    ]));
    let pruned: Value = serde_json::from_str(out.trim()).expect("prune prints JSON");
    assert!(pruned["records"].as_u64() > Some(0) && pruned["reports"].as_u64() > Some(0), "{pruned}");
    assert!(pruned["dead_letters"].as_u64() > Some(0), "{pruned}");
    assert!(
        pruned["failure_reports"].as_u64() > Some(0),
        "the corpus's failure reports arrived before 2024: {pruned}"
    );
    assert_eq!(ok(run(&["failures", "--db", s(&db), "--until", "2023-12-31"])), "no failure reports\n");
    assert_eq!(ok(run(&["dead-letters", "--db", s(&db), "--json"])), "", "dead letters age with the records");

    let after = report(&db, &[]);
    assert_eq!(messages(&after), messages(&kept), "aggregates from {aggregates_from} on are kept whole");
    assert_eq!(after["window"]["first_day"].as_i64(), kept["window"]["first_day"].as_i64());
    assert_eq!(messages(&report(&db, &["--until", "2019-12-31"])), 0);
    let days = record_days(&db);
    assert!(days.iter().all(|d| d.as_str() >= records_from), "records before {records_from} are gone");
    let records: u64 = ok(run(&["export", "--db", s(&db), "--what", "records", "--format", "jsonl"]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(records, messages(&recent), "records from {records_from} on are kept whole");
    let totals = sqlite_totals(&db);
    assert_eq!(totals.aggregated, messages(&kept));

    // A second pass finds nothing; the store is still a store.
    let again = ok(run(&["prune", "--db", s(&db), "--records-days", &records_days.to_string()]));
    assert_eq!(serde_json::from_str::<Value>(again.trim()).expect("JSON")["records"], 0);
    // Nothing to prune without an age; an age under the detection baseline is refused.
    assert_eq!(run(&["prune", "--db", s(&db)]).status.code(), Some(2));
    assert_eq!(run(&["prune", "--db", s(&db), "--aggregates-days", "7"]).status.code(), Some(2));
}

/// `[retention]` applies while `ruaflow run` runs: a watching run prunes at start, and
/// a `--once` run prunes what it just stored.
#[test]
fn run_prunes_by_its_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("ruaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[retention]\nrecords_days = {}\naggregates_days = {}\n",
            age_keeping("2024-01-01"),
            age_keeping("2020-01-01")
        ),
    )
    .expect("write config");
    let db = dir.path().join("once.db");
    ok(run(&["run", "--once", "--offline", "--config", s(&config), "--db", s(&db), s(&corpus())]));
    assert_eq!(messages(&report(&db, &["--until", "2019-12-31"])), 0);
    assert!(record_days(&db).iter().all(|d| d.as_str() >= "2024-01-01"));
    assert!(messages(&report(&db, &[])) > 0);

    let watched = corpus_store(dir.path());
    assert!(messages(&report(&watched, &["--until", "2019-12-31"])) > 0);
    let empty = dir.path().join("inbox");
    std::fs::create_dir(&empty).expect("inbox");
    let mut command = ruaflow();
    command.args(["run", "--offline", "--config", s(&config), "--db", s(&watched), s(&empty)]);
    let mut running = Running::spawn(command, dir.path(), "run");
    wait_until(
        "the running pruner",
        Duration::from_secs(60),
        || running.stderr(),
        || messages(&report(&watched, &["--until", "2019-12-31"])) == 0,
    );
    assert!(running.stderr().contains("retention: old rows deleted"), "{}", running.stderr());
    assert!(running.terminate(), "run exits 0 on SIGTERM");
}

/// Backups taken while a run writes are consistent snapshots; the last equals the store.
#[test]
fn backup_copies_a_live_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("live.db");
    let data = dir.path().join("synth");
    ok(run(&["synth", "--out", s(&data), "--seed", "3", "--days", "20"]));
    let mut command = ruaflow();
    command.args(["run", "--offline", "--db", s(&db), s(&data)]);
    let mut running = Running::spawn(command, dir.path(), "run");
    wait_until(
        "the store",
        Duration::from_secs(60),
        || running.stderr(),
        || run(&["report", "--db", s(&db), "--json"]).status.success(),
    );
    let mut sizes = Vec::new();
    for i in 0..6 {
        let copy = dir.path().join(format!("copy{i}.db"));
        ok(run(&["backup", "--db", s(&db), s(&copy)]));
        let totals = sqlite_totals(&copy);
        assert_eq!(totals.messages, totals.aggregated, "copy {i} is one snapshot: {totals:?}");
        assert!(!dir.path().join(format!("copy{i}.db-wal")).exists(), "a copy is one file");
        sizes.push(totals.messages);
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("backups saw {sizes:?} messages");
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "copies of a growing store: {sizes:?}");
    wait_until(
        "the whole data set",
        Duration::from_secs(120),
        || running.stderr(),
        || running.stderr().contains("watching inputs"),
    );
    assert!(running.terminate());
    let last = dir.path().join("last.db");
    ok(run(&["backup", "--db", s(&db), s(&last)]));
    assert_eq!(sqlite_totals(&last), sqlite_totals(&db));
    assert_eq!(report(&last, &[])["totals"], report(&db, &[])["totals"]);
    let missing = run(&["backup", "--db", s(&dir.path().join("nothing.db")), s(&last)]);
    assert_eq!(missing.status.code(), Some(2));
}

/// A store written by a newer ruaflow is refused, never modified.
#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = corpus_store(dir.path());
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)", []).expect("insert");
    drop(conn);
    let before = std::fs::read(&db).expect("read");
    let out = run(&["run", "--once", "--offline", "--db", s(&db), s(&corpus())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("newer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&db).expect("read"), before, "the file is left as it was");
    // Readers still read it.
    assert!(messages(&report(&db, &[])) > 0);
}

/// On ClickHouse 18.16 (no TTL), prune drops the month partitions past the age and
/// deletes the old rows of the unpartitioned tables.
#[test]
fn prune_drops_old_partitions_in_clickhouse() {
    let Some(services) = cluster::services() else { return };
    let (name, url) = services.database("retention");
    let ch = &services.clickhouse;
    ok(run(&["migrate", "--clickhouse", &url]));
    let q = |sql: &str| cluster::clickhouse_query(ch, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let (old, mid, new) = ("2020-01-15", "2023-06-15", "2025-06-15");
    for day in [old, mid, new] {
        q(&format!(
            "INSERT INTO {name}.dmarc_records (day, domain, count) VALUES ('{day}', 'example.com', 1)"
        ));
        q(&format!(
            "INSERT INTO {name}.agg_source_day (day, domain, messages) VALUES ('{day}', 'example.com', 1)"
        ));
        q(&format!(
            "INSERT INTO {name}.reports (day, domain, kind) VALUES ('{day}', 'example.com', 'dmarc')"
        ));
        q(&format!("INSERT INTO {name}.alerts (window_start, window_end, kind) VALUES ('{day} 00:00:00', '{day} 23:59:59', 'x')"));
    }
    let count = |table: &str| -> u64 {
        q(&format!("SELECT count() FROM {name}.{table}")).trim().parse().expect("count")
    };
    assert_eq!((count("dmarc_records"), count("agg_source_day"), count("alerts")), (3, 3, 3));

    // Records: keep from 2024-01-01 (2020 and 2023 go); the rest: from 2022-01-01.
    let out = ok(run(&[
        "prune",
        "--clickhouse",
        &url,
        "--records-days",
        &age_keeping("2024-01-01").to_string(),
        "--aggregates-days",
        &age_keeping("2022-01-01").to_string(),
    ]));
    let applied: Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(applied["ttl"], false, "ClickHouse 18.16 has no TTL");
    let dropped: Vec<&str> =
        applied["partitions_dropped"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    assert!(
        dropped.contains(&"dmarc_records:202001") && dropped.contains(&"dmarc_records:202306"),
        "{dropped:?}"
    );
    assert!(
        dropped.contains(&"agg_source_day:202001") && !dropped.contains(&"agg_source_day:202306"),
        "{dropped:?}"
    );
    assert_eq!(count("dmarc_records"), 1);
    assert_eq!((count("agg_source_day"), count("reports")), (2, 2));
    // alerts is not partitioned: an ALTER … DELETE mutation, which runs in the background.
    assert_eq!(applied["deletes"], serde_json::json!(["alerts"]));
    wait_until("the alerts mutation", Duration::from_secs(30), String::new, || count("alerts") == 2);
    let min: String = q(&format!("SELECT toString(min(window_start)) FROM {name}.alerts"));
    assert!(min.starts_with(mid), "{min}");
    // migrate with the config says the TTLs cannot be set on this server.
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(config.path(), format!("[retention]\naggregates_days = {}\n", age_keeping("2022-01-01")))
        .expect("write");
    let said = ok(run(&["migrate", "--clickhouse", &url, "--config", s(config.path())]));
    assert!(said.contains("no TTLs"), "{said}");
    q(&format!("DROP DATABASE {name}"));
}
