//! The alert lifecycle as an operator meets it: a backfill of months-old reports stores
//! its alerts as historical (sent nowhere), `ruaflow alerts ack ID --note TEXT`
//! acknowledges a firing alert (shown by `alerts` and `alerts --json`), and the report
//! counts an incident once.

mod common;

use std::path::Path;

use common::ruaflow;
use serde_json::Value;

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn alerts_json(db: &Path) -> Vec<Value> {
    ok(ruaflow().args(["alerts", "--json", "--db"]).arg(db).output().expect("alerts"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn a_backfill_is_historical_an_ack_is_kept_and_an_incident_counts_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("synth");
    ok(ruaflow()
        .args(["synth", "--seed", "1", "--scenario", "replay-flood", "--out"])
        .arg(&data)
        .output()
        .expect("synth"));
    let db = dir.path().join("ruaflow.db");
    ok(ruaflow().args(["run", "--once", "--offline", "--db"]).arg(&db).arg(&data).output().expect("run"));

    // The synthetic reports are months old: their alerts are historical.
    let alerts = alerts_json(&db);
    let replay = alerts
        .iter()
        .find(|a| a["kind"] == "dkim_replay_suspected" && a["state"] == "firing")
        .unwrap_or_else(|| panic!("the flood raised an alert: {alerts:?}"));
    assert_eq!(replay["historical"], true, "{replay}");
    assert!(replay["summary"].as_str().expect("summary").starts_with("Historical"), "{replay}");
    assert_eq!(replay["acknowledged_at"], Value::Null);
    let id = replay["id"].as_i64().expect("id");
    let text = ok(ruaflow().args(["alerts", "--db"]).arg(&db).output().expect("alerts"));
    assert!(text.contains("firing (historical)"), "{text}");

    // Acknowledged, with a note.
    let id_text = id.to_string();
    let said = ok(ruaflow()
        .args(["alerts", "ack", &id_text, "--note", "rotated s2026, ticket 4711", "--db"])
        .arg(&db)
        .output()
        .expect("ack"));
    assert!(said.contains(&format!("acknowledged alert {id}")), "{said}");
    let acked = alerts_json(&db).into_iter().find(|a| a["id"] == id).expect("still there");
    assert!(acked["acknowledged_at"].as_i64().is_some_and(|t| t > 0), "{acked}");
    assert_eq!(acked["ack_note"], "rotated s2026, ticket 4711");
    let text = ok(ruaflow().args(["alerts", "--db"]).arg(&db).output().expect("alerts"));
    assert!(
        text.contains("firing (acknowledged)") && text.contains(": rotated s2026, ticket 4711"),
        "{text}"
    );

    // What cannot be acknowledged is refused with the reason.
    let missing = ruaflow().args(["alerts", "ack", "999999", "--db"]).arg(&db).output().expect("ack");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no alert 999999"), "{missing:?}");
    if let Some(resolved) = alerts_json(&db).iter().find(|a| a["state"] == "resolved") {
        let rid = resolved["id"].to_string();
        let out = ruaflow().args(["alerts", "ack", &rid, "--db"]).arg(&db).output().expect("ack");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("resolved notice"), "{out:?}");
    }
    let nowhere = ruaflow()
        .args(["alerts", "ack", "1", "--db"])
        .arg(dir.path().join("missing.db"))
        .output()
        .expect("ack");
    assert!(!nowhere.status.success());
    assert!(!dir.path().join("missing.db").exists(), "no database is created by ack");

    // The report counts incidents: firing alerts, not their resolved notices.
    let report: Value = serde_json::from_str(&ok(ruaflow()
        .args(["report", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("report")))
    .expect("report JSON");
    let firing = alerts_json(&db).iter().filter(|a| a["state"] == "firing").count();
    assert_eq!(report["totals"]["alerts"].as_u64(), Some(firing as u64), "{}", report["totals"]);
}
