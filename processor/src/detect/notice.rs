//! Notices: turning findings into alerts without repeating them.
//!
//! Input: a [`Finding`] for (kind, domain, subject, day). Output: at most one new notice,
//! written to `alerts`. A firing finding is suppressed while an alert for the same key is
//! open (fired within `cooldown_days` and not resolved since); a quiet finding resolves
//! an open alert from an earlier day with a `resolved` notice.

use rusqlite::{params, Connection};

use ruaflow_schema::alert::{Alert, AlertKind, AlertState};

use super::{DetectConfig, Finding};
use crate::normalize::DAY;
use ruaflow_schema::clock::now;

/// Applies one finding; returns the notice it produced, if any.
pub(crate) fn apply(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
    finding: Finding,
) -> rusqlite::Result<Option<Alert>> {
    match finding {
        Finding::Firing(alert, subject) => {
            let history = History::load(conn, alert.kind, domain, &subject)?;
            if history.fired.contains(&day) {
                // Re-evaluated with more reports for the same day: keep the fuller picture,
                // without notifying again.
                update(conn, &alert, &subject)?;
                return Ok(None);
            }
            if history.covers(day, config.cooldown_days * DAY) {
                return Ok(None);
            }
            Ok(insert(conn, &alert, &subject)?.then_some(*alert))
        }
        Finding::Quiet(kind, subject) => {
            let history = History::load(conn, kind, domain, &subject)?;
            let Some(open) = history.open_before(day) else { return Ok(None) };
            let body: String = conn.query_row(
                "SELECT body FROM alerts WHERE kind = ?1 AND domain = ?2 AND subject = ?3 AND window_start = ?4 AND state = 'firing'",
                params![kind.as_str(), domain, subject, open],
                |r| r.get(0),
            )?;
            let Ok(mut alert) = serde_json::from_str::<Alert>(&body) else { return Ok(None) };
            alert.state = AlertState::Resolved;
            alert.summary = format!(
                "Resolved: {} for {domain}{} is back at its baseline on {} (it fired on {}).",
                kind.as_str(),
                if subject.is_empty() { String::new() } else { format!(" ({subject})") },
                ruaflow_schema::time::format_date(day),
                ruaflow_schema::time::format_date(open),
            );
            alert.window_start = day;
            alert.window_end = day + DAY;
            Ok(insert(conn, &alert, &subject)?.then_some(alert))
        }
    }
}

/// The notices already raised for one (kind, domain, subject): days fired and resolved.
struct History {
    fired: Vec<i64>,
    resolved: Vec<i64>,
}

impl History {
    fn load(conn: &Connection, kind: AlertKind, domain: &str, subject: &str) -> rusqlite::Result<Self> {
        let mut stmt = conn.prepare_cached(
            "SELECT window_start, state FROM alerts WHERE kind = ?1 AND domain = ?2 AND subject = ?3",
        )?;
        let mut history = History { fired: Vec::new(), resolved: Vec::new() };
        let rows = stmt.query_map(params![kind.as_str(), domain, subject], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (day, state) = row?;
            if state == "firing" {
                history.fired.push(day)
            } else {
                history.resolved.push(day)
            }
        }
        Ok(history)
    }

    /// True when `day` belongs to an episode already notified: within the cooldown of a
    /// firing notice, or after one and before its resolution (reports of one episode can
    /// arrive in any order).
    fn covers(&self, day: i64, cooldown: i64) -> bool {
        self.fired.iter().any(|&f| {
            (f - day).abs() <= cooldown || (f <= day && !self.resolved.iter().any(|&r| r > f && r <= day))
        })
    }

    /// The latest firing notice before `day` that no resolved notice followed.
    fn open_before(&self, day: i64) -> Option<i64> {
        let latest = self.fired.iter().copied().filter(|&f| f < day).max()?;
        (!self.resolved.iter().any(|&r| r > latest)).then_some(latest)
    }
}

/// Replaces a firing notice's figures when a re-evaluation of its day saw more reports.
fn update(conn: &Connection, alert: &Alert, subject: &str) -> rusqlite::Result<()> {
    let body = serde_json::to_string(alert).unwrap_or_default();
    conn.prepare_cached(
        "UPDATE alerts SET observed = ?5, baseline = ?6, summary = ?7, body = ?8, severity = ?9
         WHERE kind = ?1 AND domain = ?2 AND subject = ?3 AND window_start = ?4 AND state = 'firing' AND observed <= ?5",
    )?
    .execute(params![
        alert.kind.as_str(),
        alert.domain,
        subject,
        alert.window_start,
        alert.observed,
        alert.baseline,
        alert.summary,
        body,
        alert.severity.as_str()
    ])?;
    Ok(())
}

fn insert(conn: &Connection, alert: &Alert, subject: &str) -> rusqlite::Result<bool> {
    let state = match alert.state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    let body = serde_json::to_string(alert).unwrap_or_default();
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO alerts (kind, domain, subject, severity, window_start, window_end, observed, baseline,
                first_seen, raised_at, state, summary, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            alert.kind.as_str(),
            alert.domain,
            subject,
            alert.severity.as_str(),
            alert.window_start,
            alert.window_end,
            alert.observed,
            alert.baseline,
            alert.first_seen,
            now(),
            state,
            alert.summary,
            body
        ])?;
    Ok(n == 1)
}
