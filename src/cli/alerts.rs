//! `ruaflow alerts --db FILE [--json] [--domain D] [--since DATE] [--until DATE] [--days N]`:
//! the stored alerts, oldest first. `ruaflow alerts ack ID [--note TEXT]`: acknowledge a
//! firing alert; its episode sends nothing more. With `--clickhouse URL` instead of
//! `--db`, both work on the detector group's notices (distributed deployment).
//!
//! With `--json`, one JSON object per line: the alert's `body` column, which already is
//! the whole alert as the detector wrote it, with the row's `id` and its acknowledgement
//! (`acknowledged_at`, `ack_note`) added. Without, a readable line per alert and its
//! whole summary under it, wrapped to the terminal's width (100 columns when stdout is
//! not a terminal). The range keeps the alerts whose window overlaps it (`crate::range`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rusqlite::params;

use ruaflow_processor::clickhouse::notices::{self, Acknowledged};
use ruaflow_processor::clickhouse::ClickHouseUrl;

use crate::range::{DayRange, RangeArgs};
use crate::report::model::Alert;
use crate::report::{query, text, write_stdout};

/// Arguments of `ruaflow alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only, except by `ack`).
    #[arg(long, default_value = "ruaflow.db", global = true)]
    pub db: PathBuf,
    /// One JSON object per line (the stable machine format).
    #[arg(long)]
    pub json: bool,
    /// Only alerts for this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only alerts whose window overlaps these report days.
    #[command(flatten)]
    pub range: RangeArgs,
    /// The detector group's notices in this ClickHouse database (distributed
    /// deployment) instead of a SQLite file.
    #[arg(long, value_name = "URL", global = true)]
    pub clickhouse: Option<ClickHouseUrl>,
    /// What to do instead of listing.
    #[command(subcommand)]
    pub action: Option<AlertAction>,
}

/// What `ruaflow alerts` can do besides listing.
#[derive(Debug, Subcommand)]
pub enum AlertAction {
    /// Acknowledge a firing alert: its episode is not notified again (later days still
    /// update it in the store, and its resolved notice is stored, not sent).
    Ack {
        /// The alert's id (the first column of `ruaflow alerts`, `id` in `--json`).
        id: i64,
        /// Why, or who is on it; shown with the alert.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
}

/// The longest note kept, in characters.
const MAX_NOTE_CHARS: usize = 2_000;

fn check_note(note: Option<&String>) -> anyhow::Result<()> {
    if let Some(note) = note {
        anyhow::ensure!(
            note.chars().count() <= MAX_NOTE_CHARS,
            "the note is longer than {MAX_NOTE_CHARS} characters"
        );
    }
    Ok(())
}

/// `ruaflow alerts [ack ID] --clickhouse URL`: the detector group's notices.
fn distributed(args: AlertsArgs, url: &ClickHouseUrl) -> anyhow::Result<()> {
    let runtime = super::assemble::runtime()?;
    if let Some(AlertAction::Ack { id, note }) = &args.action {
        check_note(note.as_ref())?;
        let now = ruaflow_schema::clock::now();
        return match notices::acknowledge(url, runtime.handle(), *id, note.as_deref(), now)? {
            Acknowledged::Done { kind, domain, again } => {
                let again = if again { " (again; the first time is kept)" } else { "" };
                write_stdout(&format!("acknowledged alert {id}: {kind} {domain}{again}\n"))
            }
            Acknowledged::NotFound => anyhow::bail!("no alert {id} in {url} (ruaflow alerts --clickhouse lists them)"),
            Acknowledged::Resolved { kind, domain } => anyhow::bail!(
                "alert {id} is a resolved notice ({kind} {domain}); acknowledge the firing alert of its episode"
            ),
        };
    }
    let all = notices::list(url, runtime.handle(), args.domain.as_deref())?;
    let parsed: Vec<(notices::StoredNotice, serde_json::Value)> =
        all.into_iter().filter_map(|n| serde_json::from_str(&n.body).ok().map(|v| (n, v))).collect();
    let day_of = |v: &serde_json::Value, key: &str| v[key].as_i64().unwrap_or(0);
    let range = args
        .range
        .resolve(|| Ok::<_, anyhow::Error>(parsed.iter().map(|(_, v)| day_of(v, "window_start")).max()))?;
    let shown = parsed
        .into_iter()
        .filter(|(_, v)| day_of(v, "window_end") >= range.lo() && day_of(v, "window_start") <= range.hi());
    if args.json {
        let mut out = String::new();
        for (n, _) in shown {
            out.push_str(&with_row_fields(&n.body, n.id, n.acknowledged_at, n.ack_note.clone()));
            out.push('\n');
        }
        return write_stdout(&out);
    }
    let alerts: Vec<Alert> = shown
        .map(|(n, v)| Alert {
            id: n.id,
            kind: v["kind"].as_str().unwrap_or_default().to_owned(),
            domain: v["domain"].as_str().unwrap_or_default().to_owned(),
            severity: v["severity"].as_str().unwrap_or_default().to_owned(),
            state: n.state.clone(),
            window_start: day_of(&v, "window_start"),
            window_end: day_of(&v, "window_end"),
            observed: v["observed"].as_f64().unwrap_or(0.0),
            baseline: v["baseline"].as_f64().unwrap_or(0.0),
            first_seen: day_of(&v, "first_seen"),
            raised_at: 0,
            summary: v["summary"].as_str().unwrap_or_default().to_owned(),
            historical: n.historical,
            acknowledged_at: n.acknowledged_at,
            ack_note: n.ack_note,
        })
        .collect();
    if alerts.is_empty() {
        return write_stdout(if range == DayRange::ALL { "no alerts\n" } else { "no alerts in the range\n" });
    }
    write_stdout(&text::alerts_list(&alerts, width(), text::Style { color: false }))
}

/// Acknowledges alert `id` in the store at `db`.
fn ack(db: &std::path::Path, id: i64, note: Option<String>) -> anyhow::Result<()> {
    anyhow::ensure!(db.is_file(), "no database at {}", db.display());
    check_note(note.as_ref())?;
    let store = ruaflow_processor::sqlite::SqliteStore::open(db)
        .with_context(|| format!("cannot open {}", db.display()))?;
    let conn = store.conn();
    let found: Option<(String, String, String, Option<i64>)> = conn
        .query_row("SELECT state, kind, domain, acknowledged_at FROM alerts WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let Some((state, kind, domain, acknowledged)) = found else {
        anyhow::bail!("no alert {id} in {} (ruaflow alerts lists them with their ids)", db.display());
    };
    anyhow::ensure!(
        state == "firing",
        "alert {id} is a {state} notice ({kind} {domain}); acknowledge the firing alert of its episode"
    );
    let now = ruaflow_schema::clock::now();
    conn.execute(
        "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?2), ack_note = COALESCE(?3, ack_note)
         WHERE id = ?1",
        params![id, now, note],
    )?;
    let again = if acknowledged.is_some() { " (again; the first time is kept)" } else { "" };
    write_stdout(&format!("acknowledged alert {id}: {kind} {domain}{again}\n"))
}

/// Prints the alerts.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    if let Some(url) = args.clickhouse.clone() {
        return distributed(args, &url);
    }
    if let Some(AlertAction::Ack { id, note }) = args.action {
        return ack(&args.db, id, note);
    }
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_day(&conn, args.domain.as_deref()))?;
    if args.json {
        let mut out = String::new();
        let mut stmt = conn.prepare(
            "SELECT body, id, acknowledged_at, ack_note FROM alerts WHERE (?1 IS NULL OR lower(domain) = lower(?1))
             AND window_end >= ?2 AND window_start <= ?3
             ORDER BY window_start, id",
        )?;
        let rows = stmt.query_map(params![&args.domain, range.lo(), range.hi()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (body, id, acknowledged_at, ack_note) = row?;
            out.push_str(&with_row_fields(&body, id, acknowledged_at, ack_note));
            out.push('\n');
        }
        return write_stdout(&out);
    }
    let mut alerts = query::alerts(&conn, args.domain.as_deref(), &range, i64::MAX)?;
    alerts.reverse();
    if alerts.is_empty() {
        return write_stdout(if range == DayRange::ALL { "no alerts\n" } else { "no alerts in the range\n" });
    }
    write_stdout(&text::alerts_list(&alerts, width(), text::Style { color: false }))
}

/// The width summaries are wrapped to when stdout is not a terminal.
const PIPE_WIDTH: usize = 100;

/// The terminal's width in columns, or [`PIPE_WIDTH`] for a pipe or a file.
fn width() -> usize {
    console::Term::stdout().size_checked().map_or(PIPE_WIDTH, |(_rows, cols)| usize::from(cols))
}

/// The body on one line, with the row's id and acknowledgement added (serialized
/// compactly, so the output stays one object per line).
fn with_row_fields(body: &str, id: i64, acknowledged_at: Option<i64>, ack_note: Option<String>) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut alert)) => {
            alert.insert("id".into(), id.into());
            alert.insert("acknowledged_at".into(), acknowledged_at.into());
            alert.insert("ack_note".into(), ack_note.into());
            serde_json::Value::Object(alert).to_string()
        }
        _ => serde_json::json!({ "id": id, "error": "alert body is not a JSON object", "body": body })
            .to_string(),
    }
}
