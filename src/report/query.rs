//! Queries: the SQLite store → a [`Report`].
//!
//! Input: a ruaflow SQLite file, opened read-only (WAL lets this run while `ruaflow run`
//! writes). Output: the [`Report`] model. Invariants: every figure is read inside one
//! read transaction, so the report is one consistent snapshot; volumes come from the
//! aggregate tables (`agg_source_day`, `agg_selector_day`), which hold exactly the
//! stored records; the window is a range of report days (`crate::range`), anchored on
//! the data, never the wall clock.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use ruaflow_processor::normalize::reporter_domain;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use ruaflow_processor::sender::Status as SenderStatus;

use super::format::{date, pct, share};
use super::model::*;
use crate::range::{DayRange, RangeArgs};

/// Sources listed per domain (by messages, and by failing messages).
pub const TOP_SOURCES: i64 = 10;
/// DKIM signing domain + selector pairs listed per domain.
pub const TOP_SELECTORS: i64 = 12;
/// Reporters listed per domain.
pub const TOP_REPORTERS: usize = 20;
/// Alerts listed (overall, and per domain).
pub const RECENT_ALERTS: i64 = 20;
/// Failure reports listed per domain (the latest).
pub const LATEST_FAILURES: i64 = 10;
/// Rows of the "TLS by MX" table per domain.
pub const TOP_TLS_MX: i64 = 20;
/// Dead letters listed with their reasons.
pub const LATEST_DEAD_LETTERS: i64 = 5;

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this policy domain (compared without regard to case).
    pub domain: Option<String>,
    /// Only these report days (`--since`, `--until`, `--days`).
    pub range: RangeArgs,
}

/// Opens the store read-only. A missing file is an error (opening would otherwise
/// create an empty database), as is a file that is not a ruaflow store.
pub fn open(db: &Path) -> anyhow::Result<Connection> {
    if !db.exists() {
        anyhow::bail!("no database at {} (create one with `ruaflow run --db FILE INPUT…`)", db.display());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags)
        .with_context(|| format!("cannot open database {}", db.display()))?;
    // The writer holds the lock only for the moment of a checkpoint; wait it out.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let is_store: bool = conn
        .query_row(
            "SELECT COUNT(*) = 2 FROM sqlite_master WHERE name IN ('reports', 'agg_source_day')",
            [],
            |r| r.get(0),
        )
        .with_context(|| format!("cannot read database {}", db.display()))?;
    if !is_store {
        anyhow::bail!("{} is not a ruaflow database (no `reports` table)", db.display());
    }
    // A store written before failure reports were stored has none: an empty table of the
    // same shape in this connection's temporary schema (the file stays untouched) lets
    // every query run until `ruaflow run` migrates the file.
    let has_failures: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'failure_reports'",
        [],
        |r| r.get(0),
    )?;
    if !has_failures {
        let ddl = include_str!("../../schema/sql/sqlite/0003_failure_reports.sql");
        let start = ddl.find("CREATE TABLE failure_reports").context("the failure_reports DDL")?;
        let end = start + ddl[start..].find(");").context("the end of the failure_reports DDL")? + 2;
        let create = ddl[start..end].replacen("CREATE TABLE", "CREATE TEMP TABLE", 1);
        conn.execute_batch(&create)?;
    }
    Ok(conn)
}

/// Reads the whole report from an open store.
pub fn load(conn: &Connection, options: &Options) -> anyhow::Result<Report> {
    // One read transaction: every query below sees the same snapshot even while
    // `ruaflow run` commits batches.
    conn.execute_batch("BEGIN DEFERRED")?;
    let report = load_snapshot(conn, options);
    conn.execute_batch("COMMIT")?;
    report
}

fn load_snapshot(conn: &Connection, options: &Options) -> anyhow::Result<Report> {
    let (range, window) = window(conn, options)?;
    let mut domains = Vec::new();
    for name in domain_names(conn, &range, options.domain.as_deref())? {
        domains.push(domain(conn, &name, &range)?);
    }
    domains.sort_by(|a, b| b.volume.messages.cmp(&a.volume.messages).then_with(|| a.domain.cmp(&b.domain)));
    let filter = options.domain.as_deref();
    let alerts = alerts(conn, filter, &range, RECENT_ALERTS)?;
    let alert_count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM alerts WHERE (?1 IS NULL OR lower(domain) = lower(?1))
         AND window_end >= ?2 AND window_start <= ?3 AND state = 'firing'",
        params![filter, range.lo(), range.hi()],
        |r| r.get(0),
    )?;
    let dead_letters = dead_letters(conn)?;
    let mut totals = Totals {
        domains: domains.len() as u64,
        alerts: n(alert_count),
        dead_letters: dead_letters.count,
        ..Totals::default()
    };
    for d in &domains {
        totals.failure_reports += d.failure_reports.as_ref().map_or(0, |f| f.count);
        totals.messages += d.volume.messages;
        totals.dmarc_pass += d.volume.dmarc_pass;
        if let Some(tls) = &d.tls {
            totals.tls_successful_sessions += tls.successful_sessions;
            totals.tls_failed_sessions += tls.failed_sessions;
        }
    }
    totals.dmarc_pass_pct = pct(totals.dmarc_pass, totals.messages);
    let (dmarc_reports, tlsrpt_reports): (i64, i64) = conn.query_row(
        &format!(
            "SELECT COALESCE(SUM(kind = 'dmarc'), 0), COALESCE(SUM(kind = 'tlsrpt'), 0) FROM reports r
             WHERE r.day BETWEEN ?1 AND ?3 AND {REPORT_OF_DOMAIN}"
        ),
        params![range.lo(), filter, range.hi()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    totals.dmarc_reports = n(dmarc_reports);
    totals.tlsrpt_reports = n(tlsrpt_reports);
    let reporters = reporters(conn, &range, filter, REPORT_OF_DOMAIN, usize::MAX)?;
    Ok(Report { window, totals, domains, alerts, reporters, dead_letters })
}

/// SQL condition on a `reports r` row: it is about domain `?2` as the user typed it
/// (any case; any domain when `?2` is NULL). A TLS report is about the policy domains of
/// its policies. Used once per report, so the scan `lower()` forces is paid once.
const REPORT_OF_DOMAIN: &str = "(?2 IS NULL OR lower(r.domain) = lower(?2)
    OR r.id IN (SELECT report FROM tlsrpt_policies WHERE lower(policy_domain) = lower(?2)))";

/// The same for a domain name as stored: an exact match, which the
/// `reports (domain, day)` index serves, since it runs once per domain.
const REPORT_OF_STORED_DOMAIN: &str =
    "(r.domain = ?2 OR r.id IN (SELECT report FROM tlsrpt_policies WHERE policy_domain = ?2))";

/// The newest report day in the store (of `domain`, any case, when given): where
/// `--days N` counts back from.
pub fn newest_day(conn: &Connection, domain: Option<&str>) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        &format!("SELECT MAX(r.day) FROM reports r WHERE {REPORT_OF_DOMAIN}"),
        params![Option::<i64>::None, domain],
        |r| r.get(0),
    )
}

/// The range the options ask for, and its description: the report days with data in it.
fn window(conn: &Connection, options: &Options) -> anyhow::Result<(DayRange, Window)> {
    let range = options.range.resolve(|| newest_day(conn, options.domain.as_deref()))?;
    let (first, last, days): (Option<i64>, Option<i64>, i64) = conn.query_row(
        &format!(
            "SELECT MIN(r.day), MAX(r.day), COUNT(DISTINCT r.day) FROM reports r
             WHERE r.day BETWEEN ?1 AND ?3 AND {REPORT_OF_DOMAIN}"
        ),
        params![range.lo(), options.domain, range.hi()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let window = Window {
        days: options.range.days,
        since: range.since_date(),
        until: range.until_date(),
        domain: options.domain.clone(),
        first_day: first,
        last_day: last,
        first_date: first.map(date),
        last_date: last.map(date),
        report_days: n(days),
    };
    Ok((range, window))
}

/// Policy domains with data in the range: DMARC report domains and TLS policy domains.
fn domain_names(conn: &Connection, range: &DayRange, filter: Option<&str>) -> anyhow::Result<Vec<String>> {
    let names = conn
        .prepare(
            "SELECT domain FROM reports WHERE kind = 'dmarc' AND day BETWEEN ?1 AND ?2
             UNION
             SELECT p.policy_domain FROM tlsrpt_policies p JOIN reports r ON r.id = p.report
             WHERE r.day BETWEEN ?1 AND ?2
             UNION
             SELECT domain FROM failure_reports WHERE day BETWEEN ?1 AND ?2",
        )?
        .query_map([range.lo(), range.hi()], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.into_iter().filter(|d| filter.is_none_or(|f| d.eq_ignore_ascii_case(f))).collect())
}

fn domain(conn: &Connection, name: &str, range: &DayRange) -> anyhow::Result<DomainReport> {
    let mut d = DomainReport { domain: name.to_owned(), ..DomainReport::default() };
    let (lo, hi) = (range.lo(), range.hi());
    let (dmarc_reports, tlsrpt_reports): (i64, i64) = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM reports WHERE kind = 'dmarc' AND domain = ?1 AND day BETWEEN ?2 AND ?3),
                (SELECT COUNT(DISTINCT p.report) FROM tlsrpt_policies p JOIN reports r ON r.id = p.report
                  WHERE p.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?3)",
        params![name, lo, hi],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    d.dmarc_reports = n(dmarc_reports);
    d.tlsrpt_reports = n(tlsrpt_reports);
    d.policy = conn
        .query_row(
            "SELECT policy_p, policy_sp, pct FROM reports
             WHERE kind = 'dmarc' AND domain = ?1 AND day BETWEEN ?2 AND ?3
             ORDER BY day DESC, id DESC LIMIT 1",
            params![name, lo, hi],
            |r| Ok(Policy { p: r.get(0)?, sp: r.get(1)?, pct: r.get(2)? }),
        )
        .optional()?;
    d.volume = volume(conn, name, range)?;
    d.sources = n(conn.query_row(
        "SELECT COUNT(DISTINCT source_ip) FROM agg_source_day WHERE domain = ?1 AND day BETWEEN ?2 AND ?3",
        params![name, lo, hi],
        |r| r.get(0),
    )?);
    d.daily = daily(conn, name, range)?;
    d.top_sources = sources(conn, name, range, "messages")?;
    d.top_failing_sources = sources(conn, name, range, "failing")?;
    d.selectors = selectors(conn, name, range)?;
    d.selector_daily = selector_daily(conn, name, range)?;
    d.tls = tls(conn, name, range)?;
    d.failure_reports = failure_summary(conn, name, range)?;
    d.reporters = reporters(conn, range, Some(name), REPORT_OF_STORED_DOMAIN, TOP_REPORTERS)?;
    d.alerts = alerts(conn, Some(name), range, RECENT_ALERTS)?;
    Ok(d)
}

fn volume(conn: &Connection, domain: &str, range: &DayRange) -> anyhow::Result<Volume> {
    let v = conn.query_row(
        "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(dmarc_pass), 0), COALESCE(SUM(dkim_aligned_pass), 0),
                COALESCE(SUM(spf_aligned_pass), 0), COALESCE(SUM(dkim_only_pass), 0),
                COALESCE(SUM(disp_none), 0), COALESCE(SUM(disp_quarantine), 0), COALESCE(SUM(disp_reject), 0)
         FROM agg_source_day WHERE domain = ?1 AND day BETWEEN ?2 AND ?3",
        params![domain, range.lo(), range.hi()],
        |r| {
            let messages = n(r.get(0)?);
            let (dmarc_pass, dkim_aligned, spf_aligned) = (n(r.get(1)?), n(r.get(2)?), n(r.get(3)?));
            Ok(Volume {
                messages,
                dmarc_pass,
                dmarc_pass_pct: pct(dmarc_pass, messages),
                dkim_aligned,
                dkim_aligned_pct: pct(dkim_aligned, messages),
                spf_aligned,
                spf_aligned_pct: pct(spf_aligned, messages),
                dkim_only_pass: n(r.get(4)?),
                dispositions: Dispositions { none: n(r.get(5)?), quarantine: n(r.get(6)?), reject: n(r.get(7)?) },
            })
        },
    )?;
    Ok(v)
}

fn daily(conn: &Connection, domain: &str, range: &DayRange) -> anyhow::Result<Vec<DayVolume>> {
    let rows = conn
        .prepare(
            "SELECT day, SUM(messages), SUM(dmarc_pass), SUM(dkim_aligned_pass), SUM(dkim_only_pass)
             FROM agg_source_day WHERE domain = ?1 AND day BETWEEN ?2 AND ?3 GROUP BY day ORDER BY day",
        )?
        .query_map(params![domain, range.lo(), range.hi()], |r| {
            let (day, messages, pass, dkim, dkim_only): (i64, i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let (messages, pass, dkim, dkim_only) = (n(messages), n(pass), n(dkim), n(dkim_only));
            // dmarc_pass = DKIM aligned ∪ SPF aligned, dkim_only = DKIM aligned ∖ SPF aligned.
            Ok(DayVolume {
                day,
                date: date(day),
                messages,
                pass_both: dkim.saturating_sub(dkim_only),
                dkim_only,
                spf_only: pass.saturating_sub(dkim),
                fail: messages.saturating_sub(pass),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Top sources of a domain ordered by `"messages"` or by failing messages (`"failing"`,
/// sources without failures left out).
fn sources(conn: &Connection, domain: &str, range: &DayRange, order: &str) -> anyhow::Result<Vec<Source>> {
    let (having, order_by) = match order {
        "failing" => ("HAVING SUM(a.messages) > SUM(a.dmarc_pass)", "SUM(a.messages) - SUM(a.dmarc_pass)"),
        _ => ("", "SUM(a.messages)"),
    };
    let sql = format!(
        "SELECT a.source_ip, MAX(a.network), SUM(a.messages), SUM(a.dmarc_pass), SUM(a.dkim_aligned_pass),
                SUM(a.spf_aligned_pass), s.ptr, s.asn, s.as_org, s.country, s.service,
                COALESCE(m.status, 'unknown'), COALESCE(m.reason, '')
         FROM agg_source_day a LEFT JOIN sources s ON s.ip = a.source_ip
         LEFT JOIN senders m ON m.domain = a.domain AND m.source = a.source_ip
         WHERE a.domain = ?1 AND a.day BETWEEN ?2 AND ?4
         GROUP BY a.source_ip {having}
         ORDER BY {order_by} DESC, a.source_ip LIMIT ?3"
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params![domain, range.lo(), TOP_SOURCES, range.hi()], |r| {
            let messages = n(r.get(2)?);
            let dmarc_pass = n(r.get(3)?);
            Ok(Source {
                ip: r.get(0)?,
                network: r.get(1)?,
                messages,
                dmarc_pass,
                dmarc_fail: messages.saturating_sub(dmarc_pass),
                dkim_aligned: n(r.get(4)?),
                spf_aligned: n(r.get(5)?),
                dmarc_pass_pct: pct(dmarc_pass, messages),
                ptr: r.get(6)?,
                asn: r.get(7)?,
                as_org: r.get(8)?,
                country: r.get(9)?,
                service: r.get(10)?,
                sender: r.get(11)?,
                sender_reason: r.get(12)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn selectors(conn: &Connection, domain: &str, range: &DayRange) -> anyhow::Result<Vec<Selector>> {
    let rows = conn
        .prepare(
            "SELECT dkim_domain, selector, SUM(messages), SUM(dkim_pass), SUM(dkim_only_pass)
             FROM agg_selector_day WHERE domain = ?1 AND day BETWEEN ?2 AND ?4
             GROUP BY dkim_domain, selector ORDER BY SUM(messages) DESC, dkim_domain, selector LIMIT ?3",
        )?
        .query_map(params![domain, range.lo(), TOP_SELECTORS, range.hi()], |r| {
            Ok(Selector {
                dkim_domain: r.get(0)?,
                selector: r.get(1)?,
                messages: n(r.get(2)?),
                dkim_pass: n(r.get(3)?),
                dkim_only_pass: n(r.get(4)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn selector_daily(conn: &Connection, domain: &str, range: &DayRange) -> anyhow::Result<Vec<SelectorDay>> {
    let rows = conn
        .prepare(
            "SELECT day, dkim_domain, selector, SUM(dkim_only_pass) FROM agg_selector_day
             WHERE domain = ?1 AND day BETWEEN ?2 AND ?3 AND dkim_only_pass > 0
             GROUP BY day, dkim_domain, selector ORDER BY day, dkim_domain, selector",
        )?
        .query_map(params![domain, range.lo(), range.hi()], |r| {
            let day = r.get(0)?;
            Ok(SelectorDay {
                day,
                date: date(day),
                dkim_domain: r.get(1)?,
                selector: r.get(2)?,
                dkim_only_pass: n(r.get(3)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn tls(conn: &Connection, domain: &str, range: &DayRange) -> anyhow::Result<Option<Tls>> {
    let bounds = params![domain, range.lo(), range.hi()];
    let daily: Vec<TlsDay> = conn
        .prepare(
            "SELECT r.day, SUM(p.successful_sessions), SUM(p.failed_sessions)
             FROM tlsrpt_policies p JOIN reports r ON r.id = p.report
             WHERE p.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?3 GROUP BY r.day ORDER BY r.day",
        )?
        .query_map(bounds, |r| {
            let day = r.get(0)?;
            Ok(TlsDay {
                day,
                date: date(day),
                successful_sessions: n(r.get(1)?),
                failed_sessions: n(r.get(2)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    if daily.is_empty() {
        return Ok(None);
    }
    let reports: i64 = conn.query_row(
        "SELECT COUNT(DISTINCT p.report) FROM tlsrpt_policies p JOIN reports r ON r.id = p.report
         WHERE p.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?3",
        bounds,
        |r| r.get(0),
    )?;
    let failures = conn
        .prepare(
            "SELECT f.result_type, SUM(f.failed_sessions) FROM tlsrpt_failures f JOIN reports r ON r.id = f.report
             WHERE f.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?3
             GROUP BY f.result_type ORDER BY SUM(f.failed_sessions) DESC, f.result_type",
        )?
        .query_map(bounds, |r| Ok(TlsFailure { result_type: r.get(0)?, failed_sessions: n(r.get(1)?) }))?
        .collect::<Result<_, _>>()?;
    let failures_daily = conn
        .prepare(
            "SELECT r.day, f.result_type, SUM(f.failed_sessions) FROM tlsrpt_failures f JOIN reports r ON r.id = f.report
             WHERE f.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?3
             GROUP BY r.day, f.result_type ORDER BY r.day, f.result_type",
        )?
        .query_map(bounds, |r| {
            let day = r.get(0)?;
            Ok(TlsFailureDay { day, date: date(day), result_type: r.get(1)?, failed_sessions: n(r.get(2)?) })
        })?
        .collect::<Result<_, _>>()?;
    let successful_sessions = daily.iter().map(|d| d.successful_sessions).sum();
    let failed_sessions = daily.iter().map(|d| d.failed_sessions).sum();
    let by_mx = tls_by_mx(conn, domain, range, successful_sessions + failed_sessions)?;
    Ok(Some(Tls {
        reports: n(reports),
        successful_sessions,
        failed_sessions,
        success_pct: pct(successful_sessions, successful_sessions + failed_sessions),
        failures,
        daily,
        failures_daily,
        by_mx,
    }))
}

/// Failed sessions per receiving MX × result type × sending and receiving IP, with the
/// share of all the domain's sessions in the window.
fn tls_by_mx(conn: &Connection, domain: &str, range: &DayRange, sessions: u64) -> anyhow::Result<Vec<TlsMx>> {
    let rows = conn
        .prepare(
            "SELECT COALESCE(f.receiving_mx_hostname, ''), f.result_type, COALESCE(f.sending_mta_ip, ''),
                    COALESCE(f.receiving_ip, ''), SUM(f.failed_sessions),
                    COALESCE(GROUP_CONCAT(DISTINCT f.failure_reason_code), ''),
                    COALESCE(GROUP_CONCAT(DISTINCT f.additional_information), '')
             FROM tlsrpt_failures f JOIN reports r ON r.id = f.report
             WHERE f.policy_domain = ?1 AND r.day BETWEEN ?2 AND ?4
             GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4 LIMIT ?3",
        )?
        .query_map(params![domain, range.lo(), TOP_TLS_MX, range.hi()], |r| {
            let failed_sessions = n(r.get(4)?);
            let (share_pct, share) = share(failed_sessions, sessions);
            Ok(TlsMx {
                mx: r.get(0)?,
                result_type: r.get(1)?,
                sending_ip: r.get(2)?,
                receiving_ip: r.get(3)?,
                failed_sessions,
                failure_reason_code: r.get(5)?,
                additional_information: r.get(6)?,
                share_pct,
                share,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Which failure reports to list.
#[derive(Debug, Clone, Default)]
pub struct FailureFilter {
    /// Only this reported domain (any case).
    pub domain: Option<String>,
    /// Only reports whose message arrived at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Only reports whose message arrived at or before this time (unix seconds).
    pub until: Option<i64>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

/// Stored failure reports matching `filter`, newest first, each with the sender status
/// of its source.
pub fn failure_entries(conn: &Connection, filter: &FailureFilter) -> anyhow::Result<Vec<FailureEntry>> {
    let mut entries = Vec::new();
    for_each_failure(conn, filter, true, |entry| {
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

/// A failure report's source as the sender model stands it with the report's domain
/// (`unknown` when the model has never seen it): the same status `sources` and `report`
/// show, by the configured rules.
const SENDER_JOIN: &str = "LEFT JOIN senders m ON m.domain = f.domain AND m.source = f.source_ip";
/// The status column that goes with [`SENDER_JOIN`].
const SENDER_STATUS: &str = "COALESCE(m.status, 'unknown')";

/// Calls `each` with every stored failure report matching `filter`, each with the sender
/// status of its source, one at a time: newest first, or in stored order (which SQLite
/// reads without sorting, for exports of any size).
pub fn for_each_failure(
    conn: &Connection,
    filter: &FailureFilter,
    newest_first: bool,
    mut each: impl FnMut(FailureEntry) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(&format!(
        "SELECT f.arrival, f.reporter, f.domain, f.source_ip, f.feedback_type, f.auth_failures, f.delivery_result,
                f.dkim_domain, f.dkim_selector, f.spf_domain, f.identity_alignment, f.mail_from, f.rcpt_to,
                f.authentication_results, f.header_from, f.header_to, f.subject, f.date, f.message_id,
                f.original_authentication_results, f.redacted, {SENDER_STATUS}
         FROM failure_reports f {SENDER_JOIN}
         WHERE (?1 IS NULL OR lower(f.domain) = lower(?1)) AND (?2 IS NULL OR f.arrival >= ?2)
           AND (?3 IS NULL OR f.arrival <= ?3)
         ORDER BY {} LIMIT ?4",
        if newest_first { "f.arrival DESC, f.id DESC" } else { "f.id" }
    ))?;
    let mut rows =
        stmt.query(params![filter.domain, filter.since, filter.until, filter.limit.unwrap_or(-1)])?;
    while let Some(r) = rows.next()? {
        let arrival = r.get(0)?;
        each(FailureEntry {
            arrival,
            arrival_time: ruaflow_schema::time::format_datetime(arrival),
            reporter: r.get(1)?,
            domain: r.get(2)?,
            source_ip: r.get(3)?,
            sender: r.get(21)?,
            feedback_type: r.get(4)?,
            auth_failures: r.get(5)?,
            delivery_result: r.get(6)?,
            dkim_domain: r.get(7)?,
            dkim_selector: r.get(8)?,
            spf_domain: r.get(9)?,
            identity_alignment: r.get(10)?,
            mail_from: r.get(11)?,
            rcpt_to: r.get(12)?,
            authentication_results: r.get(13)?,
            header_from: r.get(14)?,
            header_to: r.get(15)?,
            subject: r.get(16)?,
            date: r.get(17)?,
            message_id: r.get(18)?,
            original_authentication_results: r.get(19)?,
            redacted: r.get(20)?,
        })?;
    }
    Ok(())
}

/// The newest day a failure report's message arrived on (of `domain`, any case, when
/// given): where `ruaflow failures --days N` counts back from.
pub fn newest_failure_day(conn: &Connection, domain: Option<&str>) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MAX(day) FROM failure_reports WHERE ?1 IS NULL OR lower(domain) = lower(?1)",
        [domain],
        |r| r.get(0),
    )
}

/// The failure reports of one domain over the range; `None` when there are none.
fn failure_summary(
    conn: &Connection,
    domain: &str,
    range: &DayRange,
) -> anyhow::Result<Option<FailureReports>> {
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM failure_reports WHERE domain = ?1 AND day BETWEEN ?2 AND ?3",
        params![domain, range.lo(), range.hi()],
        |r| r.get(0),
    )?;
    if count == 0 {
        return Ok(None);
    }
    let rows: Vec<(String, i64, i64, String)> = conn
        .prepare(&format!(
            "SELECT COALESCE(f.source_ip, ''), COUNT(*), MAX(f.arrival), {SENDER_STATUS}
             FROM failure_reports f {SENDER_JOIN}
             WHERE f.domain = ?1 AND f.day BETWEEN ?2 AND ?3 GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1"
        ))?
        .query_map(params![domain, range.lo(), range.hi()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut summary = FailureReports { count: n(count), ..FailureReports::default() };
    for (ip, reports, last_arrival, sender) in rows {
        if sender == SenderStatus::Unknown.as_str() {
            summary.from_unknown_sources += n(reports);
        }
        if (summary.sources.len() as i64) < TOP_SOURCES {
            summary.sources.push(FailureSource { ip, sender, reports: n(reports), last_arrival });
        }
    }
    // The latest of the range's reports, by when their messages arrived.
    let filter = FailureFilter {
        domain: Some(domain.to_owned()),
        since: range.first_day,
        until: range.last_day.map(|_| range.hi()),
        limit: Some(LATEST_FAILURES),
    };
    summary.latest = failure_entries(conn, &filter)?;
    Ok(Some(summary))
}

/// Reporters over the range, for one domain or (`None`) all; `of_domain` is
/// [`REPORT_OF_DOMAIN`] or [`REPORT_OF_STORED_DOMAIN`]. Grouped by
/// [`reporter_domain`], so one receiver's DMARC and TLS reports (with different org
/// names) count as one reporter.
fn reporters(
    conn: &Connection,
    range: &DayRange,
    domain: Option<&str>,
    of_domain: &str,
    limit: usize,
) -> anyhow::Result<Vec<Reporter>> {
    let sql = format!(
        "SELECT r.org_name, COALESCE(r.email, ''), COUNT(*), SUM(r.kind = 'dmarc'), SUM(r.kind = 'tlsrpt'),
                SUM(CASE WHEN r.kind = 'dmarc' THEN r.message_count ELSE 0 END)
         FROM reports r WHERE r.day BETWEEN ?1 AND ?3 AND {of_domain}
         GROUP BY r.org_name, r.email"
    );
    let mut by_domain: HashMap<String, (Reporter, HashMap<String, u64>)> = HashMap::new();
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params![range.lo(), domain, range.hi()])?;
    while let Some(r) = rows.next()? {
        let (org_name, email): (String, String) = (r.get(0)?, r.get(1)?);
        // Without a domain to go by, reports are one reporter when their org names
        // differ only in case; it is then named by its most common org name (below).
        let domain = reporter_domain(&email, &org_name);
        let key = domain.clone().unwrap_or_else(|| org_name.trim().to_lowercase());
        let (reporter, names) = by_domain.entry(key).or_insert_with(|| {
            (Reporter { reporter: domain.unwrap_or_default(), ..Reporter::default() }, HashMap::new())
        });
        let reports = n(r.get(2)?);
        reporter.reports += reports;
        reporter.dmarc_reports += n(r.get(3)?);
        reporter.tlsrpt_reports += n(r.get(4)?);
        reporter.messages += n(r.get(5)?);
        *names.entry(org_name).or_default() += reports;
    }
    let mut reporters: Vec<Reporter> = by_domain
        .into_values()
        .map(|(mut reporter, names)| {
            let mut names: Vec<(String, u64)> = names.into_iter().collect();
            names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            reporter.org_names = names.into_iter().map(|(name, _)| name).collect();
            reporter.org_name = reporter.org_names.first().cloned().unwrap_or_default();
            if reporter.reporter.is_empty() {
                reporter.reporter = reporter.org_name.clone();
            }
            reporter
        })
        .collect();
    reporters.sort_by(|a, b| {
        b.reports.cmp(&a.reports).then(b.messages.cmp(&a.messages)).then_with(|| a.reporter.cmp(&b.reporter))
    });
    reporters.truncate(limit);
    Ok(reporters)
}

/// Alerts whose window overlaps the range, newest first. `domain = None` means every
/// domain.
pub fn alerts(
    conn: &Connection,
    domain: Option<&str>,
    range: &DayRange,
    limit: i64,
) -> anyhow::Result<Vec<Alert>> {
    let rows = conn
        .prepare(
            "SELECT id, kind, domain, severity, state, window_start, window_end, observed, baseline,
                    first_seen, raised_at, summary, historical, acknowledged_at, ack_note
             FROM alerts WHERE (?1 IS NULL OR lower(domain) = lower(?1)) AND window_end >= ?2 AND window_start <= ?4
             ORDER BY window_start DESC, id DESC LIMIT ?3",
        )?
        .query_map(params![domain, range.lo(), limit, range.hi()], |r| {
            Ok(Alert {
                id: r.get(0)?,
                kind: r.get(1)?,
                domain: r.get(2)?,
                severity: r.get(3)?,
                state: r.get(4)?,
                window_start: r.get(5)?,
                window_end: r.get(6)?,
                observed: r.get(7)?,
                baseline: r.get(8)?,
                first_seen: r.get(9)?,
                raised_at: r.get(10)?,
                summary: r.get(11)?,
                historical: r.get(12)?,
                acknowledged_at: r.get(13)?,
                ack_note: r.get(14)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn dead_letters(conn: &Connection) -> anyhow::Result<DeadLetters> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
    let latest = conn
        .prepare(
            "SELECT id, received_at, source, origin, location, reason, raw_size FROM dead_letters
             ORDER BY received_at DESC, id DESC LIMIT ?1",
        )?
        .query_map([LATEST_DEAD_LETTERS], |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                received_at: r.get(1)?,
                source: r.get(2)?,
                origin: r.get(3)?,
                location: r.get(4)?,
                reason: r.get(5)?,
                raw_size: n(r.get(6)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(DeadLetters { count: n(count), latest })
}

/// A count read from SQLite (an i64, never negative in this store) as u64.
fn n(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
