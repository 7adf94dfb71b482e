//! The queries and columns of every kind of export row.
//!
//! Each function streams: it steps through one query (or, for TLS, one query per
//! report, each bounded by a report's size) and writes each row as it comes. Orders
//! follow the table or an index (stored order for reports and records, the key for
//! aggregates and sources), so SQLite never sorts a whole table.

use std::io::Write;

use rusqlite::{params, Connection, Row};

use ruaflow_processor::normalize::reporter_domain;
use serde_json::Value;

use ruaflow_processor::sender::Status;

use crate::report::format::pct;
use crate::report::model::FailureEntry;
use crate::report::query::{for_each_failure, FailureFilter};

use super::records::{self, RecordFields, ReportFields};
use super::write::{Cell, Format, RowWriter};
use super::{date, datetime, Filter};

/// The SQL condition on a `reports r` row for [`Filter::domain`] as `?3` (TLS reports
/// are about the policy domains of their policies).
const REPORT_OF_DOMAIN: &str = "(?3 IS NULL OR lower(r.domain) = lower(?3)
    OR r.id IN (SELECT report FROM tlsrpt_policies WHERE lower(policy_domain) = lower(?3)))";

/// Runs `sql` with the filter as `?1` (first second), `?2` (last second), `?3` (domain)
/// and writes the row `to_cells` makes of each result row.
fn stream(
    conn: &Connection,
    sql: &str,
    filter: &Filter,
    mut w: RowWriter<impl Write>,
    to_cells: impl Fn(&Row<'_>) -> rusqlite::Result<Vec<Cell>>,
) -> anyhow::Result<u64> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params![filter.range.lo(), filter.range.hi(), filter.domain])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        w.row(&to_cells(row)?)?;
        n += 1;
    }
    w.finish()?;
    Ok(n)
}

/// The SQL of [`records`] (also checked for its query plan by the tests). Only DMARC
/// reports have records, so the join needs no `kind` condition (which would lead SQLite
/// to the identity index, and then to sorting every record).
pub(super) const RECORDS_SQL: &str =
    "SELECT r.org_name, r.email, r.report_id, r.begin_ts, r.end_ts, r.domain,
        r.adkim, r.aspf, r.policy_p, r.policy_sp, r.policy_np, r.pct, r.testing,
        d.source_ip, s.country, s.ptr, s.ptr_base, s.asn, s.as_org, d.count, d.spf_aligned, d.dkim_aligned,
        d.disposition, d.reasons, d.envelope_from, d.header_from, d.envelope_to, d.dkim_auth, d.spf_auth,
        d.policy_dkim, d.policy_spf
    FROM reports r JOIN dmarc_records d ON d.report = r.id LEFT JOIN sources s ON s.ip = d.source_ip
    WHERE r.day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR lower(r.domain) = lower(?3))
    ORDER BY r.id, d.rowid";

/// One row per DMARC record, in stored order.
pub fn records(conn: &Connection, filter: &Filter, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let w = RowWriter::new(out, format, records::COLUMNS)?;
    stream(conn, RECORDS_SQL, filter, w, |r| {
        let report = ReportFields {
            org_name: r.get(0)?,
            org_email: r.get::<_, Option<String>>(1)?.filter(|e| !e.is_empty()),
            report_id: r.get(2)?,
            begin: r.get(3)?,
            end: r.get(4)?,
            domain: r.get(5)?,
            adkim: r.get(6)?,
            aspf: r.get(7)?,
            p: r.get(8)?,
            sp: r.get(9)?,
            np: r.get(10)?,
            pct: r.get(11)?,
            testing: r.get(12)?,
        };
        let dkim_auth: String = r.get(27)?;
        let spf_auth: String = r.get(28)?;
        let record = RecordFields {
            source_ip: r.get(13)?,
            country: r.get(14)?,
            reverse_dns: r.get(15)?,
            base_domain: r.get(16)?,
            asn: r.get(17)?,
            as_name: r.get(18)?,
            count: r.get(19)?,
            spf_aligned: r.get(20)?,
            dkim_aligned: r.get(21)?,
            disposition: r.get(22)?,
            reasons: RecordFields::reasons_from_json(r.get::<_, Option<String>>(23)?.as_deref()),
            envelope_from: r.get(24)?,
            header_from: r.get(25)?,
            envelope_to: r.get(26)?,
            dkim: RecordFields::checks_from_json(&dkim_auth, "selector"),
            spf: RecordFields::checks_from_json(&spf_auth, "scope"),
            policy_dkim: r.get(29)?,
            policy_spf: r.get(30)?,
        };
        Ok(records::row(&report, &record))
    })
}

const AGGREGATE_COLUMNS: &[&str] = &[
    "domain",
    "day",
    "source_ip_address",
    "network",
    "reporter",
    "count",
    "dmarc_pass",
    "dkim_aligned_pass",
    "spf_aligned_pass",
    "dkim_only_pass",
    "disposition_none",
    "disposition_quarantine",
    "disposition_reject",
];

/// The SQL of [`aggregates`].
pub(super) const AGGREGATES_SQL: &str =
    "SELECT domain, day, source_ip, network, reporter, messages, dmarc_pass,
        dkim_aligned_pass, spf_aligned_pass, dkim_only_pass, disp_none, disp_quarantine, disp_reject
    FROM agg_source_day WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR lower(domain) = lower(?3))
    ORDER BY domain, day, source_ip, reporter";

/// One row per policy domain × report day × source IP × reporter (`reporter` is the
/// org name as reported).
pub fn aggregates(
    conn: &Connection,
    filter: &Filter,
    format: Format,
    out: impl Write,
) -> anyhow::Result<u64> {
    let w = RowWriter::new(out, format, AGGREGATE_COLUMNS)?;
    stream(conn, AGGREGATES_SQL, filter, w, |r| {
        let mut cells = vec![text(r, 0)?, Cell::Text(date(r.get(1)?)), text(r, 2)?, text(r, 3)?, text(r, 4)?];
        for i in 5..13 {
            cells.push(Cell::Int(r.get(i)?));
        }
        Ok(cells)
    })
}

/// Columns of a sources row (`ruaflow sources --json` and `--csv` print the same). The
/// `*_pct` rates come last so that CSV readers that go by position keep their columns.
pub const SOURCE_COLUMNS: &[&str] = &[
    "domain",
    "source_ip_address",
    "network",
    "first_day",
    "last_day",
    "days_seen",
    "count",
    "dmarc_pass",
    "dkim_aligned_pass",
    "spf_aligned_pass",
    "dkim_only_pass",
    "source_reverse_dns",
    "source_base_domain",
    "source_asn",
    "source_as_name",
    "source_country",
    "service",
    "service_kind",
    "sender_status",
    "sender_reason",
    "dmarc_pass_pct",
    "dkim_aligned_pct",
    "spf_aligned_pct",
];

/// Which sources [`sources`] writes, and in what order.
#[derive(Debug, Clone, Default)]
pub struct SourceSelection {
    /// Most messages first (what `ruaflow sources` shows); else key order, streamed
    /// along the `(domain, source_ip, day)` index (what the export writes).
    pub by_volume: bool,
    /// At most this many rows (`None` = all).
    pub limit: Option<u32>,
    /// Only sources whose sender status is one of these (empty = any status).
    pub statuses: Vec<Status>,
}

/// The SQL of [`sources`]: `?4` is the row limit (-1 = none), `?5` a JSON array of the
/// statuses to keep (NULL = all). A source the model has no row for is `unknown`.
fn sources_sql(by_volume: bool) -> String {
    format!(
        "SELECT a.domain, a.source_ip, MAX(a.network), MIN(a.day), MAX(a.day), COUNT(DISTINCT a.day),
            SUM(a.messages), SUM(a.dmarc_pass), SUM(a.dkim_aligned_pass), SUM(a.spf_aligned_pass),
            SUM(a.dkim_only_pass), s.ptr, s.ptr_base, s.asn, s.as_org, s.country, s.service, s.service_kind,
            COALESCE(m.status, 'unknown'), COALESCE(m.reason, '')
        FROM agg_source_day a LEFT JOIN sources s ON s.ip = a.source_ip
        LEFT JOIN senders m ON m.domain = a.domain AND m.source = a.source_ip
        WHERE a.day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR lower(a.domain) = lower(?3))
            AND (?5 IS NULL OR COALESCE(m.status, 'unknown') IN (SELECT value FROM json_each(?5)))
        GROUP BY a.domain, a.source_ip
        ORDER BY {} LIMIT ?4",
        if by_volume { "SUM(a.messages) DESC, a.domain, a.source_ip" } else { "a.domain, a.source_ip" }
    )
}

/// One row per policy domain × source IP over the range, with the sender model's status
/// of the source (as of the last report that touched it: configured, authorized,
/// service, familiar or unknown), why, and the pass rates (percent of the source's
/// messages, one decimal). Rows are written as SQLite steps; in key order nothing is
/// sorted, by volume SQLite sorts the range's sources (spilling to disk when large).
pub fn sources(
    conn: &Connection,
    filter: &Filter,
    selection: &SourceSelection,
    format: Format,
    out: impl Write,
) -> anyhow::Result<u64> {
    let mut w = RowWriter::new(out, format, SOURCE_COLUMNS)?;
    let mut stmt = conn.prepare(&sources_sql(selection.by_volume))?;
    let limit = selection.limit.map_or(-1, i64::from);
    let statuses =
        (!selection.statuses.is_empty()).then(|| serde_json::to_string(&selection.statuses)).transpose()?;
    let range = &filter.range;
    let mut rows = stmt.query(params![range.lo(), range.hi(), filter.domain, limit, statuses])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let mut cells = vec![text(r, 0)?, text(r, 1)?, text(r, 2)?];
        cells.push(Cell::Text(date(r.get(3)?)));
        cells.push(Cell::Text(date(r.get(4)?)));
        for i in 5..11 {
            cells.push(Cell::Int(r.get(i)?));
        }
        cells.extend([text(r, 11)?, text(r, 12)?, Cell::from(r.get::<_, Option<i64>>(13)?), text(r, 14)?]);
        for i in 15..20 {
            cells.push(text(r, i)?);
        }
        let count: i64 = r.get(6)?;
        for part in [7, 8, 9] {
            cells.push(rate(r.get(part)?, count));
        }
        w.row(&cells)?;
        n += 1;
    }
    w.finish()?;
    Ok(n)
}

/// `part` as a percentage of `whole`, one decimal; absent when `whole` is 0.
fn rate(part: i64, whole: i64) -> Cell {
    let (part, whole) = (u64::try_from(part).unwrap_or(0), u64::try_from(whole).unwrap_or(0));
    pct(part, whole).map_or(Cell::Null, Cell::Float)
}

const REPORT_COLUMNS: &[&str] = &[
    "kind",
    "reporter",
    "org_name",
    "org_email",
    "report_id",
    "domain",
    "begin_date",
    "end_date",
    "day",
    "schema",
    "p",
    "sp",
    "np",
    "adkim",
    "aspf",
    "pct",
    "testing",
    "record_count",
    "message_count",
    "source",
    "origin",
    "filename",
    "location",
    "stored_at",
    "warnings",
    "envelope_sha256",
];

/// One row per report (DMARC and TLS), in stored order; `reporter` is the reporter
/// named once (the registrable domain of its address), `source` … `filename` say where
/// its input came from.
pub fn reports(conn: &Connection, filter: &Filter, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let w = RowWriter::new(out, format, REPORT_COLUMNS)?;
    let sql = format!(
        "SELECT r.kind, r.org_name, r.email, r.report_id, r.domain, r.begin_ts, r.end_ts, r.day, r.schema_version,
            r.policy_p, r.policy_sp, r.policy_np, r.adkim, r.aspf, r.pct, r.testing, r.record_count,
            r.message_count, e.source, e.origin, e.filename, r.location, r.stored_at, r.warnings,
            lower(hex(r.envelope_sha256))
        FROM reports r LEFT JOIN envelopes e ON e.sha256 = r.envelope_sha256
        WHERE r.day BETWEEN ?1 AND ?2 AND {REPORT_OF_DOMAIN}
        ORDER BY r.id"
    );
    stream(conn, &sql, filter, w, |r| {
        let org_name: String = r.get(1)?;
        let email: Option<String> = r.get(2)?;
        let reporter =
            reporter_domain(email.as_deref().unwrap_or(""), &org_name).unwrap_or_else(|| org_name.clone());
        let warnings: Vec<String> =
            r.get::<_, Option<String>>(23)?.and_then(|w| serde_json::from_str(&w).ok()).unwrap_or_default();
        let mut cells = vec![text(r, 0)?, Cell::Text(reporter), Cell::Text(org_name), Cell::from(email)];
        cells.extend([text(r, 3)?, text(r, 4)?]);
        cells.push(Cell::Text(datetime(r.get(5)?)));
        cells.push(Cell::Text(datetime(r.get(6)?)));
        cells.push(Cell::Text(date(r.get(7)?)));
        for i in 8..14 {
            cells.push(text(r, i)?);
        }
        cells.push(Cell::from(r.get::<_, Option<i64>>(14)?));
        cells.push(text(r, 15)?);
        cells.push(Cell::Int(r.get(16)?));
        cells.push(Cell::Int(r.get(17)?));
        cells.extend([text(r, 18)?, text(r, 19)?, text(r, 20)?, text(r, 21)?]);
        cells.push(Cell::Text(datetime(r.get(22)?)));
        cells.push(if warnings.is_empty() { Cell::Null } else { Cell::Text(warnings.join(" | ")) });
        cells.push(text(r, 24)?);
        Ok(cells)
    })
}

/// parsedmarc's SMTP TLS CSV columns, then `day`.
const TLS_COLUMNS: &[&str] = &[
    "organization_name",
    "begin_date",
    "end_date",
    "report_id",
    "result_type",
    "successful_session_count",
    "failed_session_count",
    "policy_domain",
    "policy_type",
    "policy_strings",
    "mx_host_patterns",
    "sending_mta_ip",
    "receiving_ip",
    "receiving_mx_hostname",
    "receiving_mx_helo",
    "additional_info_uri",
    "failure_reason_code",
    "day",
];

/// Per TLS report (stored order): one row per policy with its session counts, then one
/// per failure detail with its result type and failed sessions, as parsedmarc writes
/// them. `receiving_mx_helo` is not stored and stays empty. With a domain filter, only
/// that policy domain's rows.
pub fn tls(conn: &Connection, filter: &Filter, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let mut w = RowWriter::new(out, format, TLS_COLUMNS)?;
    let mut reports = conn.prepare(&format!(
        "SELECT r.id, r.org_name, r.begin_ts, r.end_ts, r.report_id, r.day FROM reports r
         WHERE r.kind = 'tlsrpt' AND r.day BETWEEN ?1 AND ?2 AND {REPORT_OF_DOMAIN} ORDER BY r.id"
    ))?;
    let mut policies = conn.prepare(
        "SELECT successful_sessions, failed_sessions, policy_domain, policy_type, policy_string, mx_host
         FROM tlsrpt_policies WHERE report = ?1 AND (?2 IS NULL OR lower(policy_domain) = lower(?2)) ORDER BY rowid",
    )?;
    let mut failures = conn.prepare(
        "SELECT result_type, failed_sessions, policy_domain, sending_mta_ip, receiving_ip, receiving_mx_hostname,
            additional_information, failure_reason_code
         FROM tlsrpt_failures WHERE report = ?1 AND (?2 IS NULL OR lower(policy_domain) = lower(?2)) ORDER BY rowid",
    )?;
    let range = &filter.range;
    let mut rows = reports.query(params![range.lo(), range.hi(), filter.domain])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let head =
            [text(r, 1)?, Cell::Text(datetime(r.get(2)?)), Cell::Text(datetime(r.get(3)?)), text(r, 4)?];
        let day = Cell::Text(date(r.get(5)?));
        let mut p = policies.query(params![id, filter.domain])?;
        while let Some(p) = p.next()? {
            let mut cells = head.to_vec();
            cells.extend([Cell::Null, Cell::Int(p.get(0)?), Cell::Int(p.get(1)?), text(p, 2)?, text(p, 3)?]);
            cells.push(joined(p.get(4)?));
            cells.push(joined(p.get(5)?));
            cells.extend(std::iter::repeat_n(Cell::Null, 6));
            cells.push(day.clone());
            w.row(&cells)?;
            n += 1;
        }
        let mut f = failures.query(params![id, filter.domain])?;
        while let Some(f) = f.next()? {
            let mut cells = head.to_vec();
            cells.extend([
                text(f, 0)?,
                Cell::Null,
                Cell::Int(f.get(1)?),
                text(f, 2)?,
                Cell::Null,
                Cell::Null,
            ]);
            cells.extend([
                Cell::Null,
                text(f, 3)?,
                text(f, 4)?,
                text(f, 5)?,
                Cell::Null,
                text(f, 6)?,
                text(f, 7)?,
            ]);
            cells.push(day.clone());
            w.row(&cells)?;
            n += 1;
        }
    }
    w.finish()?;
    Ok(n)
}

/// The fields of a failure report as `ruaflow failures --json` prints them, in order.
pub const FAILURE_COLUMNS: &[&str] = &[
    "arrival",
    "arrival_time",
    "reporter",
    "domain",
    "source_ip",
    "sender",
    "feedback_type",
    "auth_failures",
    "delivery_result",
    "dkim_domain",
    "dkim_selector",
    "spf_domain",
    "identity_alignment",
    "mail_from",
    "rcpt_to",
    "authentication_results",
    "header_from",
    "header_to",
    "subject",
    "date",
    "message_id",
    "original_authentication_results",
    "redacted",
];

/// A failure report as a row of [`FAILURE_COLUMNS`] (the values of its JSON form).
pub fn failure_row(entry: &FailureEntry) -> Vec<Cell> {
    let value = serde_json::to_value(entry).unwrap_or_default();
    FAILURE_COLUMNS
        .iter()
        .map(|column| match &value[*column] {
            Value::String(s) => Cell::Text(s.clone()),
            Value::Number(n) => n.as_i64().map_or(Cell::Null, Cell::Int),
            _ => Cell::Null,
        })
        .collect()
}

/// One row per stored failure report (as stored: redacted unless the configuration
/// allowed more) whose message arrived in the range, in stored order, with the sender
/// status of its source.
pub fn failures(conn: &Connection, filter: &Filter, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let mut w = RowWriter::new(out, format, FAILURE_COLUMNS)?;
    let which = FailureFilter {
        domain: filter.domain.clone(),
        since: filter.range.first_day,
        until: filter.range.last_day.map(|_| filter.range.hi()),
        limit: None,
    };
    let mut n = 0;
    for_each_failure(conn, &which, false, |entry| {
        w.row(&failure_row(&entry))?;
        n += 1;
        Ok(())
    })?;
    w.finish()?;
    Ok(n)
}

const ALERT_COLUMNS: &[&str] = &[
    "kind",
    "domain",
    "subject",
    "severity",
    "state",
    "window_start",
    "window_end",
    "observed",
    "baseline",
    "first_seen",
    "raised_at",
    "summary",
];

/// One row per alert notice whose window overlaps the range, oldest first.
pub fn alerts(conn: &Connection, filter: &Filter, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let w = RowWriter::new(out, format, ALERT_COLUMNS)?;
    let sql = "SELECT kind, domain, subject, severity, state, window_start, window_end, observed, baseline,
            first_seen, raised_at, summary
        FROM alerts WHERE window_end >= ?1 AND window_start <= ?2 AND (?3 IS NULL OR lower(domain) = lower(?3))
        ORDER BY window_start, id";
    stream(conn, sql, filter, w, |r| {
        let mut cells = (0..5).map(|i| text(r, i)).collect::<rusqlite::Result<Vec<_>>>()?;
        cells.push(Cell::Text(datetime(r.get(5)?)));
        cells.push(Cell::Text(datetime(r.get(6)?)));
        cells.push(Cell::Float(r.get(7)?));
        cells.push(Cell::Float(r.get(8)?));
        cells.push(Cell::Text(datetime(r.get(9)?)));
        cells.push(Cell::Text(datetime(r.get(10)?)));
        cells.push(text(r, 11)?);
        Ok(cells)
    })
}

/// A nullable text column.
fn text(r: &Row<'_>, i: usize) -> rusqlite::Result<Cell> {
    Ok(Cell::from(r.get::<_, Option<String>>(i)?))
}

/// A stored JSON array of strings, joined with `|` as parsedmarc joins TLS lists.
fn joined(json: Option<String>) -> Cell {
    let items: Vec<String> = json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
    if items.is_empty() {
        Cell::Null
    } else {
        Cell::Text(items.join("|"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streaming needs plans that never sort or group a whole table in a temporary
    /// B-tree: every export reads in the order of a table or an index. (The test fails
    /// when the `records` query filters on `kind`: SQLite then takes the identity
    /// index and sorts every record.)
    #[test]
    fn failure_columns_are_the_json_fields_in_order() {
        let entry = FailureEntry { arrival: 1, reporter: "r".into(), ..FailureEntry::default() };
        let value = serde_json::to_value(&entry).expect("JSON");
        let fields: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        let mut columns = FAILURE_COLUMNS.to_vec();
        columns.sort_unstable();
        assert_eq!(columns, fields, "every field, once");
        assert_eq!(failure_row(&entry)[0], Cell::Int(1));
        assert_eq!(failure_row(&entry)[2], Cell::Text("r".into()));
    }

    #[test]
    fn export_queries_stream_without_sorting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ruaflow_processor::sqlite::SqliteStore::open(&dir.path().join("s.db")).expect("store");
        let conn = store.conn();
        let sql = [RECORDS_SQL.to_owned(), AGGREGATES_SQL.to_owned(), sources_sql(false)];
        for (i, sql) in sql.iter().enumerate() {
            for (domain, statuses) in [(None, None), (Some("example.com"), Some(r#"["unknown"]"#))] {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
                let args = params![0, i64::MAX, domain, -1, statuses];
                let count = stmt.parameter_count();
                let plan: Vec<String> = stmt
                    .query_map(&args[..count], |r| r.get::<_, String>(3))
                    .expect("plan")
                    .collect::<Result<_, _>>()
                    .expect("plan rows");
                // COUNT(DISTINCT day) keeps a B-tree per group: the days of one source,
                // bounded by the range, not by the table.
                let sorts =
                    plan.iter().any(|step| step.contains("TEMP B-TREE") && !step.contains("count(DISTINCT)"));
                assert!(!sorts, "query {i} sorts: {plan:#?}");
            }
        }
    }
}
