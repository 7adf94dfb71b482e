//! Golden files for `ruaflow parse --json`: every file of ../shared/corpus and of
//! tests/fixtures has its expected output under tests/golden/. On a mismatch the test
//! writes `<golden>.actual` beside the expected file and fails naming it; with
//! `UPDATE_GOLDEN=1` it rewrites the expected files instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every regular file under `dir`, sorted, as paths relative to `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).expect("list dir").map(|e| e.expect("entry")).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).expect("under base").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `ruaflow parse --json` on each file of `input_dir` (from inside it, so the
/// `file` field is the relative path) and compares with `golden_dir/<file>.jsonl`.
/// Returns how many files were compared.
fn check_tree(input_dir: &Path, golden_dir: &Path, skip: &dyn Fn(&Path) -> bool) -> usize {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for rel in files(input_dir) {
        if skip(&rel) {
            continue;
        }
        let output = Command::new(env!("CARGO_BIN_EXE_ruaflow"))
            .current_dir(input_dir)
            .args(["parse", "--json"])
            .arg(&rel)
            .output()
            .expect("run ruaflow");
        // Exit 0 (reports) or 1 (no report in the input) are both normal; anything else
        // (a panic is 101) is a bug.
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{}: exit {:?}: {}",
            rel.display(),
            code,
            String::from_utf8_lossy(&output.stderr)
        );
        let actual = String::from_utf8(output.stdout).expect("utf-8 output");
        for line in actual.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("each line is json");
            assert!(value["kind"].is_string() && value["file"].is_string(), "{line}");
        }
        let golden = golden_dir.join(format!("{}.jsonl", rel.display()));
        compared += 1;
        if update {
            std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
            std::fs::write(&golden, &actual).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        let actual_path = PathBuf::from(format!("{}.actual", golden.display()));
        if expected != actual {
            std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
            std::fs::write(&actual_path, &actual).expect("write actual");
            mismatches.push(actual_path.display().to_string());
        } else {
            let _ = std::fs::remove_file(&actual_path);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} golden mismatches (diff each .actual against its .jsonl; UPDATE_GOLDEN=1 accepts them):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    compared
}

#[test]
fn corpus_matches_golden() {
    let corpus = root().join("../shared/corpus");
    assert!(
        corpus.is_dir(),
        "../shared/corpus is missing: the corpus must sit beside the project (see README)"
    );
    // Licences and the corpus README are documentation, not inputs.
    let skip = |rel: &Path| {
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.starts_with("LICENSE") || name == "README.md"
    };
    let compared = check_tree(&corpus, &root().join("tests/golden/corpus"), &skip);
    assert!(compared >= 50, "only {compared} corpus files compared");
}

#[test]
fn fixtures_match_golden() {
    let fixtures = root().join("tests/fixtures");
    let skip = |rel: &Path| rel.extension().is_some_and(|e| e == "py");
    let compared = check_tree(&fixtures, &root().join("tests/golden/fixtures"), &skip);
    assert!(compared >= 25, "only {compared} fixtures compared");
}
