//! `ruaflow dead-letters` and `ruaflow reprocess` end to end. "After a fix" is played by
//! a cap: the corpus is first stored with `[limits] max_records = 1`, which turns every
//! report of two records or more into a dead letter; reprocessing with the default caps
//! must then store exactly what a clean run stores, leave the inputs that hold no report
//! as dead letters, and change nothing when run again.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{corpus, ok, run_args as run, s, sqlite_totals};

/// The corpus, copied, without `test_empty.xml`: that report has the identity of
/// `test.xml` with no records, so under the cap it is the copy that gets stored, and a
/// stored report is never replaced by a later copy (the first copy wins, reprocessed or
/// not).
fn inputs(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let path = entry.expect("entry").path();
            let target = to.join(path.file_name().expect("name"));
            if path.is_dir() {
                copy(&path, &target);
            } else if path.file_name().is_some_and(|n| n != "test_empty.xml") {
                std::fs::copy(&path, &target).expect("copy");
            }
        }
    }
    let to = dir.join("corpus");
    if !to.exists() {
        copy(&corpus(), &to);
    }
    to
}

fn store_with(dir: &Path, name: &str, limits: &str) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, format!("[limits]\n{limits}\n")).expect("config");
    let db = dir.join(format!("{name}.db"));
    ok(run(&["run", "--once", "--offline", "--config", s(&config), "--db", s(&db), s(&inputs(dir))]));
    db
}

fn dead_letters(db: &Path) -> Vec<Value> {
    ok(run(&["dead-letters", "--db", s(db), "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn totals(db: &Path) -> Value {
    let report: Value =
        serde_json::from_str(&ok(run(&["report", "--db", s(db), "--json"]))).expect("report JSON");
    let mut totals = report["totals"].clone();
    totals.as_object_mut().expect("totals").remove("dead_letters");
    totals
}

#[test]
fn reprocess_stores_what_now_parses_and_only_that() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = store_with(dir.path(), "clean", "");
    let capped = store_with(dir.path(), "capped", "max_records = 1");
    let before = dead_letters(&capped);
    let clean_dead = dead_letters(&clean);
    assert!(
        before.len() > clean_dead.len() + 10,
        "the cap made dead letters: {} vs {}",
        before.len(),
        clean_dead.len()
    );
    let cut: Vec<&Value> =
        before.iter().filter(|d| d["reason"].as_str().is_some_and(|r| r.contains("max_records"))).collect();
    assert!(!cut.is_empty(), "reasons name the cap");
    for d in &before {
        // The full origin: the path of the corpus file, never cut.
        let origin = d["origin"].as_str().expect("origin");
        assert!(Path::new(origin).exists(), "{origin}");
        assert!(d["received"].is_string() && d["sha256"].as_str().is_some_and(|h| h.len() == 64));
        assert_eq!(
            d["reprocessable"],
            d["kept_bytes"].as_i64() == d["raw_size"].as_i64() && d["kept_bytes"].as_i64() > Some(0)
        );
    }
    let text = ok(run(&["dead-letters", "--db", s(&capped)]));
    assert!(text.contains("max_records") && text.contains("ruaflow reprocess"), "{text}");
    assert!(totals(&capped) != totals(&clean));

    let said = ok(run(&["reprocess", "--db", s(&capped), "--dead-letters", "--offline"]));
    assert!(said.contains("now read whole"), "{said}");
    assert_eq!(totals(&capped), totals(&clean), "what now parses is stored, counted once");
    assert_eq!(sqlite_totals(&capped).messages, sqlite_totals(&clean).messages);
    let after = dead_letters(&capped);
    let key = |d: &Value| {
        (d["origin"].as_str().unwrap_or("").to_owned(), d["location"].as_str().unwrap_or("").to_owned())
    };
    let want: HashSet<_> = clean_dead.iter().map(key).collect();
    let got: HashSet<_> = after.iter().map(key).collect();
    assert_eq!(got, want, "left: exactly the inputs that hold no report");
    let kept: i64 = rusqlite::Connection::open(&capped)
        .expect("open")
        .query_row("SELECT COUNT(*) FROM dead_letter_inputs", [], |r| r.get(0))
        .expect("count");
    let inputs: HashSet<&str> = after.iter().filter_map(|d| d["sha256"].as_str()).collect();
    assert_eq!(kept as usize, inputs.len(), "the bytes of the inputs that parse now are gone");

    // Again: nothing to store, nothing changes.
    let again = ok(run(&["reprocess", "--db", s(&capped), "--offline"]));
    assert!(again.contains("(0 reports"), "{again}");
    assert_eq!(totals(&capped), totals(&clean));
    assert_eq!(dead_letters(&capped).iter().map(key).collect::<HashSet<_>>(), want);
}

#[test]
fn inputs_kept_only_in_part_are_not_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = store_with(dir.path(), "cut", "max_records = 1\nmax_dead_letter_bytes = 64");
    let before = dead_letters(&db);
    let partial: Vec<&Value> =
        before.iter().filter(|d| d["reprocessable"] == false && d["kept_bytes"].as_i64() > Some(0)).collect();
    assert!(!partial.is_empty(), "some inputs are larger than 64 bytes");
    let text = ok(run(&["dead-letters", "--db", s(&db)]));
    assert!(text.contains("not reprocessable"), "{text}");
    let said = ok(run(&["reprocess", "--db", s(&db), "--offline"]));
    assert!(said.contains("not retried"), "{said}");
    let after = dead_letters(&db);
    assert_eq!(after.len(), before.len(), "nothing could be retried, nothing was lost");
    // --since after every input: nothing selected.
    let none = ok(run(&["reprocess", "--db", s(&db), "--since", "2099-01-01", "--offline"]));
    assert!(none.starts_with("0 inputs reprocessed"), "{none}");
}
