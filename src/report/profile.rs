//! One address, everything the store knows about it: `ruaflow source IP`.
//!
//! Input: an open store and an IP address. Output: a [`Profile`] (also the `--json`
//! document): the sender model's row per policy domain (status, why, volumes, DKIM
//! keys), the enrichment of the address, its daily volume over the last days it was
//! seen, and the alerts that named it. Every query goes through an index (`senders` by
//! source, `agg_source_day` by domain × source × day) except the alert search, which
//! reads each alert's `sources` array (`json_each`): alerts are few per day, not per
//! record. All of it is read in one snapshot.

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use ruaflow_processor::normalize::network_of;

use super::format::{date, datetime, pct};

/// How many days of daily volume are shown: the most recent the address was seen on.
pub const DAILY_DAYS: u32 = 14;
/// How many alerts are listed (newest first); [`Profile::alerts_total`] counts them all.
pub const MAX_ALERTS: u32 = 100;

/// Everything known about one address.
#[derive(Debug, Serialize)]
pub struct Profile {
    /// The address, in the form the store keeps it.
    pub ip: String,
    /// Its /24 or /48.
    pub network: String,
    /// True when the store knows anything about it.
    pub seen: bool,
    /// What enrichment found (reverse DNS, AS, country, service), if it ran.
    pub enrichment: Option<Enrichment>,
    /// The sender model's row for each policy domain it sent as, most messages first.
    pub domains: Vec<DomainStanding>,
    /// Its daily volume on the last days it was seen (newest first), per policy domain.
    pub daily: Vec<Daily>,
    /// The alerts that named it (newest first, at most [`MAX_ALERTS`]).
    pub alerts: Vec<AlertMention>,
    /// How many alerts named it in all.
    pub alerts_total: u64,
}

/// The `sources` row of the address.
#[derive(Debug, Serialize)]
pub struct Enrichment {
    /// Reverse DNS name.
    pub ptr: Option<String>,
    /// The registrable domain of the reverse DNS name.
    pub ptr_base: Option<String>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// Autonomous system name.
    pub as_name: Option<String>,
    /// The AS's domain (IPinfo).
    pub as_domain: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// The mail service behind the address.
    pub service: Option<String>,
    /// Its kind (`esp`, `mailbox`, `cloud`, …).
    pub service_kind: Option<String>,
    /// What named it: `ptr`, `as_domain`, `asn` or `as_name` (only a service named by
    /// the IP databases is trusted by the sender model).
    pub service_by: Option<String>,
    /// When the address was first stored, `YYYY-MM-DD HH:MM:SS` UTC.
    pub first_seen: String,
    /// When reverse DNS last answered, if it did.
    pub resolved_at: Option<String>,
}

/// How the address stands with one policy domain (its `senders` row).
#[derive(Debug, Serialize)]
pub struct DomainStanding {
    /// The policy domain.
    pub domain: String,
    /// configured, authorized, service, familiar or unknown, as of `last_day`.
    pub status: String,
    /// Why.
    pub reason: String,
    /// The last day the status changed.
    pub status_since: String,
    /// The first report day it was seen on.
    pub first_day: String,
    /// The last report day it was seen on.
    pub last_day: String,
    /// On how many distinct report days.
    pub days_seen: u64,
    /// Messages in all.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// Messages with an aligned DKIM pass.
    pub dkim_aligned_pass: u64,
    /// Messages with an aligned SPF pass.
    pub spf_aligned_pass: u64,
    /// Messages that passed on DKIM alone (SPF not aligned): what a replay looks like.
    pub dkim_only_pass: u64,
    /// `dmarc_pass` in percent of `messages`, one decimal.
    pub dmarc_pass_pct: Option<f64>,
    /// `dkim_aligned_pass` in percent.
    pub dkim_aligned_pct: Option<f64>,
    /// `spf_aligned_pass` in percent.
    pub spf_aligned_pct: Option<f64>,
    /// The DKIM keys it signed with, as `signing domain/selector`.
    pub dkim_keys: Vec<String>,
}

/// One day of the address's mail for one policy domain.
#[derive(Debug, Serialize)]
pub struct Daily {
    /// The report day.
    pub day: String,
    /// The policy domain.
    pub domain: String,
    /// Messages.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// Messages with an aligned DKIM pass.
    pub dkim_aligned_pass: u64,
    /// Messages with an aligned SPF pass.
    pub spf_aligned_pass: u64,
    /// How many reporters saw it that day.
    pub reporters: u64,
}

/// An alert notice whose `sources` name the address.
#[derive(Debug, Serialize)]
pub struct AlertMention {
    /// The alert's id (`ruaflow alerts ack ID`).
    pub id: i64,
    /// The detector.
    pub kind: String,
    /// The policy domain.
    pub domain: String,
    /// The report day of its window.
    pub day: String,
    /// firing or resolved.
    pub state: String,
    /// How urgent.
    pub severity: String,
    /// Messages the address contributed to the signal, as the alert says.
    pub messages: Option<u64>,
    /// Stored from a backfill, never sent.
    pub historical: bool,
    /// Acknowledged by an operator.
    pub acknowledged: bool,
}

/// Reads everything known about `ip` (one read snapshot).
pub fn load(conn: &Connection, ip: IpAddr) -> anyhow::Result<Profile> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let profile = load_snapshot(conn, ip);
    conn.execute_batch("COMMIT")?;
    profile
}

fn load_snapshot(conn: &Connection, ip: IpAddr) -> anyhow::Result<Profile> {
    // Addresses are stored as `IpAddr` displays them (lowercase, IPv6 compressed).
    let text = ip.to_string();
    let enrichment = conn
        .query_row(
            "SELECT ptr, ptr_base, asn, as_org, as_domain, country, service, service_kind, service_by,
                first_seen, resolved_at
             FROM sources WHERE ip = ?1",
            [&text],
            enrichment,
        )
        .optional()?;
    let mut stmt = conn.prepare(
        "SELECT domain, status, reason, status_since, first_day, last_day, days_seen, messages, dmarc_pass,
            dkim_aligned_pass, spf_aligned_pass, dkim_only_pass, dkim_keys
         FROM senders WHERE source = ?1 ORDER BY messages DESC, domain",
    )?;
    let domains = stmt.query_map([&text], standing)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut daily = Vec::new();
    let mut days = conn.prepare(
        "SELECT day, SUM(messages), SUM(dmarc_pass), SUM(dkim_aligned_pass), SUM(spf_aligned_pass), COUNT(*)
         FROM agg_source_day WHERE domain = ?1 AND source_ip = ?2
         GROUP BY day ORDER BY day DESC LIMIT ?3",
    )?;
    for d in &domains {
        let rows = days.query_map(params![d.domain, text, DAILY_DAYS], |r| {
            Ok((r.get::<_, i64>(0)?, d.domain.clone(), r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
        daily.extend(rows.collect::<rusqlite::Result<Vec<(i64, String, i64, i64, i64, i64, i64)>>>()?);
    }
    // The last DAILY_DAYS days it was seen on, whichever domain it sent as.
    daily.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut kept_days: Vec<i64> = daily.iter().map(|d| d.0).collect();
    kept_days.dedup();
    let cutoff = kept_days.get(DAILY_DAYS as usize - 1).copied().unwrap_or(i64::MIN);
    let daily: Vec<Daily> = daily
        .into_iter()
        .filter(|d| d.0 >= cutoff)
        .map(|(day, domain, messages, dmarc, dkim, spf, reporters)| Daily {
            day: date(day),
            domain,
            messages: n(messages),
            dmarc_pass: n(dmarc),
            dkim_aligned_pass: n(dkim),
            spf_aligned_pass: n(spf),
            reporters: n(reporters),
        })
        .collect();
    let (alerts, alerts_total) = alerts(conn, &text)?;
    let seen = enrichment.is_some() || !domains.is_empty() || alerts_total > 0;
    Ok(Profile { network: network_of(ip), ip: text, seen, enrichment, domains, daily, alerts, alerts_total })
}

/// The alert notices whose `sources[].ip` is `ip`, newest first, and how many there are.
/// A body that is not JSON (never written by ruaflow) names no one.
fn alerts(conn: &Connection, ip: &str) -> anyhow::Result<(Vec<AlertMention>, u64)> {
    const NAMING: &str = "FROM alerts a
        JOIN json_each(CASE WHEN json_valid(a.body) THEN a.body ELSE '{}' END, '$.sources') s
        WHERE json_extract(s.value, '$.ip') = ?1";
    let total: i64 = conn.query_row(&format!("SELECT COUNT(DISTINCT a.id) {NAMING}"), [ip], |r| r.get(0))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT a.id, a.kind, a.domain, a.window_start, a.state, a.severity,
            MAX(json_extract(s.value, '$.messages')), a.historical, a.acknowledged_at IS NOT NULL
         {NAMING} GROUP BY a.id ORDER BY a.window_start DESC, a.id DESC LIMIT ?2"
    ))?;
    let mentions = stmt
        .query_map(params![ip, MAX_ALERTS], |r| {
            Ok(AlertMention {
                id: r.get(0)?,
                kind: r.get(1)?,
                domain: r.get(2)?,
                day: date(r.get(3)?),
                state: r.get(4)?,
                severity: r.get(5)?,
                messages: r.get::<_, Option<i64>>(6)?.map(n),
                historical: r.get(7)?,
                acknowledged: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((mentions, n(total)))
}

fn enrichment(r: &Row<'_>) -> rusqlite::Result<Enrichment> {
    Ok(Enrichment {
        ptr: r.get(0)?,
        ptr_base: r.get(1)?,
        asn: r.get(2)?,
        as_name: r.get(3)?,
        as_domain: r.get(4)?,
        country: r.get(5)?,
        service: r.get(6)?,
        service_kind: r.get(7)?,
        service_by: r.get(8)?,
        first_seen: datetime(r.get(9)?),
        resolved_at: r.get::<_, Option<i64>>(10)?.map(datetime),
    })
}

fn standing(r: &Row<'_>) -> rusqlite::Result<DomainStanding> {
    let count = |i: usize| r.get::<_, i64>(i).map(n);
    let messages = count(7)?;
    let (dmarc_pass, dkim_aligned_pass, spf_aligned_pass) = (count(8)?, count(9)?, count(10)?);
    let keys: String = r.get(12)?;
    Ok(DomainStanding {
        domain: r.get(0)?,
        status: r.get(1)?,
        reason: r.get(2)?,
        status_since: date(r.get(3)?),
        first_day: date(r.get(4)?),
        last_day: date(r.get(5)?),
        days_seen: count(6)?,
        messages,
        dmarc_pass,
        dkim_aligned_pass,
        spf_aligned_pass,
        dkim_only_pass: count(11)?,
        dmarc_pass_pct: pct(dmarc_pass, messages),
        dkim_aligned_pct: pct(dkim_aligned_pass, messages),
        spf_aligned_pct: pct(spf_aligned_pass, messages),
        dkim_keys: serde_json::from_str(&keys).unwrap_or_default(),
    })
}

fn n(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
