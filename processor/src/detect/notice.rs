//! Notices: turning findings into alerts a postmaster can work with.
//!
//! Input: a [`Finding`] for (kind, domain, subject, day) and the notices stored for that
//! key. Output: at most one new notice, stored through the [`DetectStore`], and returned
//! when it is to be sent. The rules:
//! - one incident, one firing notice: a firing finding on a day an open episode covers
//!   (within `cooldown_days` of its firing notice, or after it and before its resolution)
//!   adds that day's figure to the episode ([`Episode`]) and notifies nobody;
//! - the same day evaluated again with more reports refreshes the notice's figures;
//! - a quiet finding after an episode's last day resolves it, with the episode's own
//!   figures (first and last day, peak, total);
//! - a window older than `notify_max_age_days` when evaluated (a backfill) is stored as
//!   historical and sent nowhere; an acknowledged episode sends nothing more.

use ruaflow_schema::alert::{Alert, AlertKind, AlertState, Episode};

use super::store::{DetectStore, StoredNotice};
use super::{percent, thousands, DetectConfig, Finding};
use crate::normalize::DAY;

/// How the summary of a notice about a window already old when evaluated begins.
const HISTORICAL: &str = "Historical (evaluated after the fact, not sent): ";

/// Applies one finding for `domain` on `day`; returns the notice to send, if any.
pub(crate) fn apply<S: DetectStore + ?Sized>(
    store: &mut S,
    config: &DetectConfig,
    now: i64,
    (domain, day): (&str, i64),
    finding: Finding,
) -> Result<Option<Alert>, S::Error> {
    match finding {
        Finding::Firing(alert, subject) => fire(store, config, now, *alert, &subject),
        Finding::Quiet(kind, subject) => quiet(store, config, now, kind, &subject, (domain, day)),
    }
}

fn fire<S: DetectStore + ?Sized>(
    store: &mut S,
    config: &DetectConfig,
    now: i64,
    mut alert: Alert,
    subject: &str,
) -> Result<Option<Alert>, S::Error> {
    let day = alert.window_start;
    let notices = store.notices(alert.kind, &alert.domain, subject)?;
    if let Some(same) = notices.iter().find(|n| n.firing && n.day == day) {
        // Re-evaluated with more reports for the same day: keep the fuller picture.
        let mut updated = if alert.observed >= same.alert.observed { alert } else { same.alert.clone() };
        let mut episode =
            same.alert.episode.clone().unwrap_or_else(|| Episode::starting(day, updated.observed));
        episode.record(day, updated.observed.max(same.alert.observed));
        updated.episode = Some(episode);
        updated.historical = same.alert.historical;
        if updated.historical && !updated.summary.starts_with(HISTORICAL) {
            updated.summary = format!("{HISTORICAL}{}", updated.summary);
        }
        store.update_notice(same.id, &updated)?;
        return Ok(None);
    }
    if let Some(open) = covering(&notices, day, config.cooldown_days * DAY) {
        let mut kept = open.alert.clone();
        let mut episode = kept.episode.take().unwrap_or_else(|| Episode::starting(open.day, kept.observed));
        episode.record(day, alert.observed);
        kept.episode = Some(episode);
        store.update_notice(open.id, &kept)?;
        return Ok(None);
    }
    alert.episode = Some(Episode::starting(day, alert.observed));
    alert.historical = is_historical(config, now, alert.window_end);
    if alert.historical {
        alert.summary = format!("{HISTORICAL}{}", alert.summary);
    }
    let inserted = store.insert_notice(&alert, subject)?;
    Ok((inserted && !alert.historical).then_some(alert))
}

fn quiet<S: DetectStore + ?Sized>(
    store: &mut S,
    config: &DetectConfig,
    now: i64,
    kind: AlertKind,
    subject: &str,
    (domain, day): (&str, i64),
) -> Result<Option<Alert>, S::Error> {
    let notices = store.notices(kind, domain, subject)?;
    let Some(open) = open_before(&notices, day) else { return Ok(None) };
    let mut alert = open.alert.clone();
    let episode = alert.episode.clone().unwrap_or_else(|| Episode::starting(open.day, alert.observed));
    alert.state = AlertState::Resolved;
    alert.summary = format!(
        "Resolved: {} for {domain}{} is back at its baseline on {}. {}",
        kind.as_str(),
        if subject.is_empty() { String::new() } else { format!(" ({subject})") },
        ruaflow_schema::time::format_date(day),
        episode_figures(kind, &episode),
    );
    alert.window_start = day;
    alert.window_end = day + DAY;
    alert.observed = episode.peak;
    alert.episode = Some(episode);
    alert.historical = is_historical(config, now, alert.window_end);
    let inserted = store.insert_notice(&alert, subject)?;
    Ok((inserted && !alert.historical && !open.acknowledged).then_some(alert))
}

/// True when a window that ended at `window_end` is too old to notify anyone of.
fn is_historical(config: &DetectConfig, now: i64, window_end: i64) -> bool {
    // Saturating: any age a configuration can hold is a valid one.
    window_end < now.saturating_sub(config.notify_max_age_days.saturating_mul(DAY))
}

/// The firing notice whose episode covers `day`: fired within the cooldown of it, or
/// before it and not resolved since (reports of one episode arrive in any order).
fn covering(notices: &[StoredNotice], day: i64, cooldown: i64) -> Option<&StoredNotice> {
    let resolved: Vec<i64> = notices.iter().filter(|n| !n.firing).map(|n| n.day).collect();
    notices
        .iter()
        .filter(|n| n.firing)
        .filter(|f| {
            (f.day - day).abs() <= cooldown
                || (f.day <= day && !resolved.iter().any(|&r| r > f.day && r <= day))
        })
        .max_by_key(|f| f.day)
}

/// The latest firing notice before `day` that no resolution followed and whose episode
/// ended before `day` (a quiet day inside an episode, reported late, resolves nothing).
fn open_before(notices: &[StoredNotice], day: i64) -> Option<&StoredNotice> {
    let latest = notices.iter().filter(|n| n.firing && n.day < day).max_by_key(|n| n.day)?;
    let resolved = notices.iter().any(|n| !n.firing && n.day > latest.day);
    let last_day = latest.alert.episode.as_ref().map_or(latest.day, |e| e.last_day);
    (!resolved && last_day < day).then_some(latest)
}

/// "It fired on N days, FIRST to LAST; peak X, Y in all."
fn episode_figures(kind: AlertKind, episode: &Episode) -> String {
    let share = kind == AlertKind::TlsFailureSpike;
    let days = episode.days();
    let span = if episode.first_day == episode.last_day {
        format!("It fired on {}", ruaflow_schema::time::format_date(episode.first_day))
    } else {
        format!(
            "It fired on {days} day{} from {} to {}",
            if days == 1 { "" } else { "s" },
            ruaflow_schema::time::format_date(episode.first_day),
            ruaflow_schema::time::format_date(episode.last_day)
        )
    };
    match kind {
        AlertKind::ReporterSilence => format!("{span}."),
        _ if share => format!("{span}; peak {}.", percent(episode.peak)),
        _ => format!(
            "{span}; peak {} messages a day, {} in all.",
            thousands(episode.peak.round() as u64),
            thousands(episode.total.round() as u64)
        ),
    }
}
