//! `ruaflow demo [--out DIR]`: the whole embedded pipeline on a synthetic replay flood.
//!
//! Generates a month of realistic reports for three domains (with a DKIM replay flood
//! like the December 2021 incident in the last week), runs `run --once` on them, prints
//! the summary and the alerts, and leaves the SQLite file and an HTML report in DIR.

use std::path::PathBuf;

use clap::Args;

use ruaflow_schema::alert::Alert;

use crate::report;
use crate::synth::{self, Scenario, SynthOptions};

use super::config::Config;
use super::run::run_pipeline;

/// Arguments of `ruaflow demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the data, the database and the HTML report (default: a new
    /// directory under the system temp directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The seed of the demo data set: fixed, so every demo shows the same story.
const DEMO_SEED: u64 = 2021;

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let out = match args.out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("ruaflow-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    let data = out.join("data");
    let db = out.join("ruaflow.db");
    let html = out.join("report.html");
    for stale in [db.clone(), out.join("ruaflow.db-wal"), out.join("ruaflow.db-shm")] {
        let _ = std::fs::remove_file(stale);
    }

    println!("1/3 generating 35 days of reports for 3 domains, with a DKIM replay flood in the last week …");
    let opts = SynthOptions { seed: DEMO_SEED, scenario: Scenario::ReplayFlood, ..SynthOptions::default() };
    let generated = synth::generate(&opts, &data)?;
    println!(
        "    {} report files ({} DMARC, {} TLS) in {}",
        generated.files,
        generated.dmarc_reports,
        generated.tlsrpt_reports,
        synth::reports_dir(&data).display()
    );

    println!("2/3 running the embedded pipeline (parse, aggregate, store, detect) …");
    let started = std::time::Instant::now();
    let mut config = Config::default();
    // The demo's addresses are synthetic: looking them up would only wait on timeouts.
    config.enrich.offline = true;
    // The month is replayed as if its reports arrived now (the demo has no alert sinks,
    // so nothing is sent either way): its alerts read as live ones, not as a backfill.
    config.detect.notify_max_age_days = 36_500;
    let summary = run_pipeline(&db, &[synth::reports_dir(&data)], true, &config)?;
    println!(
        "    {} reports, {} records, {} messages stored in {:.1} s; {} alert notices",
        summary.reports,
        summary.records,
        summary.messages,
        started.elapsed().as_secs_f64(),
        summary.alerts
    );

    println!("3/3 report\n");
    report::print_summary(&db)?;
    report::write_html(&db, &html)?;
    print_alerts(&db)?;
    println!();
    println!("SQLite database: {}", db.display());
    println!("HTML report:     {}", html.display());
    println!("Alerts as JSON:  ruaflow alerts --db {} --json", db.display());
    Ok(())
}

/// Prints each firing alert in full: what the postmaster has to read and act on.
fn print_alerts(db: &std::path::Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt =
        conn.prepare("SELECT body FROM alerts WHERE state = 'firing' ORDER BY window_start, id")?;
    let bodies: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for body in bodies {
        let alert: Alert = serde_json::from_str(&body)?;
        println!("\n━━ ALERT {} · {} · {}", alert.kind.as_str(), alert.severity.as_str(), alert.domain);
        println!("{}", textwrap(&alert.summary, 92, "  "));
        if let Some(selector) = alert.selectors.first() {
            println!(
                "  selector: {}._domainkey.{} ({} messages)",
                selector.selector, selector.domain, selector.messages
            );
        }
        let sources: Vec<String> = alert
            .sources
            .iter()
            .take(5)
            .map(|s| format!("{} ({}, {} msgs)", s.ip, s.network, s.messages))
            .collect();
        if !sources.is_empty() {
            println!("  top sources: {}", sources.join(", "));
        }
        let reporters: Vec<String> =
            alert.reporters.iter().take(3).map(|r| format!("{} ({})", r.org, r.messages)).collect();
        if !reporters.is_empty() {
            println!("  reported by: {}", reporters.join(", "));
        }
    }
    Ok(())
}

/// Wraps text at `width` columns, indenting every line.
fn textwrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines = vec![String::from(indent)];
    for word in text.split_whitespace() {
        let line = lines.last_mut().map_or(0, |l| l.len());
        if line > indent.len() && line + 1 + word.len() > width {
            lines.push(String::from(indent));
        }
        if let Some(last) = lines.last_mut() {
            if last.len() > indent.len() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join("\n")
}
