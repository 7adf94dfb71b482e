//! Terminal view: a [`Report`] → aligned plain text, one section per domain.
//!
//! Input: the report model. Output: text for stdout. Numbers carry thousands separators,
//! percentages one decimal. Colour (ANSI) only when asked, which the caller does only
//! when stdout is a terminal and `NO_COLOR` is unset. Every string from the store goes
//! through [`terminal_safe`], so a hostile report cannot send escape sequences.

use std::fmt::Write as _;

use super::format::{datetime, figure, pct, pct_text, terminal_safe, thousands, truncate};
use super::model::{Alert, DomainReport, FailureEntry, Report, Reporter, Source, TlsMx};
use ruaflow_schema::text::wrap;

/// Widest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 40;
/// Widest the last cell of a row gets (summaries, reasons).
const MAX_LAST_CELL: usize = 100;

/// Renders the report as text; `color` adds ANSI bold/dim/colour.
pub fn render(report: &Report, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    header(&mut out, report, st);
    if report.domains.is_empty() {
        out.push_str("\nno reports in the store for this window\n");
    }
    for d in &report.domains {
        domain(&mut out, d, st);
    }
    if !report.alerts.is_empty() {
        let _ = writeln!(out, "\n{}", st.bold("Recent alerts"));
        alerts_table(&report.alerts, true).render(&mut out, 2, st);
    }
    // With one domain, its own list already says it all.
    if report.domains.len() > 1 && !report.reporters.is_empty() {
        let _ = writeln!(out, "\n{}", st.bold("Reporters"));
        reporters_table(&report.reporters).render(&mut out, 2, st);
    }
    let dl = &report.dead_letters;
    let _ = writeln!(out, "\n{} {}", st.bold("Dead letters"), thousands(dl.count));
    let mut t = Table::new(&[("received", false), ("origin", false), ("location", false), ("reason", false)]);
    for l in &dl.latest {
        t.row(vec![datetime(l.received_at), tail(&l.origin, MAX_CELL), l.location.clone(), l.reason.clone()]);
    }
    t.drop_empty_columns();
    t.render(&mut out, 2, st);
    out
}

fn header(out: &mut String, report: &Report, st: Style) {
    let t = &report.totals;
    let _ = writeln!(
        out,
        "{}  {} · {} DMARC reports · {} TLS reports · {} messages · DMARC pass {}",
        st.bold("ruaflow report"),
        plural(t.domains, "domain"),
        thousands(t.dmarc_reports),
        thousands(t.tlsrpt_reports),
        thousands(t.messages),
        st.pct(t.dmarc_pass_pct),
    );
    let w = &report.window;
    let span = match (&w.first_date, &w.last_date) {
        (Some(first), Some(last)) => format!("{first} … {last}, {}", plural(w.report_days, "report day")),
        _ => "no report days".to_owned(),
    };
    let scope = terminal_safe(&w.scope());
    let filter = w.domain.as_deref().map(|d| format!(" · domain {}", terminal_safe(d))).unwrap_or_default();
    let _ = writeln!(out, "{}", st.dim(&format!("window: {scope} ({span}){filter}")));
}

fn domain(out: &mut String, d: &DomainReport, st: Style) {
    let name = if d.domain.is_empty() { "(no policy domain)".to_owned() } else { terminal_safe(&d.domain) };
    let policy = d
        .policy
        .as_ref()
        .map(|p| {
            let mut s = format!("p={}", p.p.as_deref().map_or("–".into(), terminal_safe));
            if let Some(sp) = &p.sp {
                let _ = write!(s, " sp={}", terminal_safe(sp));
            }
            if let Some(pct) = p.pct {
                let _ = write!(s, " pct={pct}");
            }
            s
        })
        .unwrap_or_default();
    let _ =
        writeln!(out, "\n{}", format!("{} {}", st.bold(&format!("━━ {name}")), st.dim(&policy)).trim_end());
    let v = &d.volume;
    let _ = writeln!(
        out,
        "  {} DMARC reports · {} TLS reports · {} sources",
        thousands(d.dmarc_reports),
        thousands(d.tlsrpt_reports),
        thousands(d.sources)
    );
    if v.messages > 0 {
        let mut t = Table::new(&[("", false), ("", true), ("", false), ("", true), ("", false), ("", true)]);
        t.row(vec![
            "messages".into(),
            thousands(v.messages),
            "DMARC pass".into(),
            pct_text(v.dmarc_pass_pct),
            "DKIM aligned".into(),
            pct_text(v.dkim_aligned_pct),
        ]);
        t.row(vec![
            "DKIM-only pass".into(),
            thousands(v.dkim_only_pass),
            "DMARC fail".into(),
            pct_text(pct(v.messages - v.dmarc_pass.min(v.messages), v.messages)),
            "SPF aligned".into(),
            pct_text(v.spf_aligned_pct),
        ]);
        let ds = &v.dispositions;
        t.row(vec![
            "none".into(),
            thousands(ds.none),
            "quarantine".into(),
            thousands(ds.quarantine),
            "reject".into(),
            thousands(ds.reject),
        ]);
        t.headless = true;
        t.render(out, 2, st);
    }
    if !d.top_sources.is_empty() {
        let _ = writeln!(out, "\n  {}", st.bold("Top sources"));
        sources_table(&d.top_sources, false).render(out, 4, st);
    }
    if !d.top_failing_sources.is_empty() {
        let _ = writeln!(out, "\n  {}", st.bold("Top failing sources (DMARC fail)"));
        sources_table(&d.top_failing_sources, true).render(out, 4, st);
    }
    if !d.selectors.is_empty() {
        let _ = writeln!(out, "\n  {}", st.bold("DKIM signatures"));
        let mut t = Table::new(&[
            ("signing domain", false),
            ("selector", false),
            ("messages", true),
            ("verified", true),
            ("DKIM-only pass", true),
        ]);
        for s in &d.selectors {
            let selector = if s.selector.is_empty() { "–".to_owned() } else { s.selector.clone() };
            t.row(vec![
                s.dkim_domain.clone(),
                selector,
                thousands(s.messages),
                pct_text(pct(s.dkim_pass, s.messages)),
                thousands(s.dkim_only_pass),
            ]);
        }
        t.render(out, 4, st);
    }
    if let Some(tls) = &d.tls {
        let _ = writeln!(
            out,
            "\n  {}  {} reports · {} sessions · success {}",
            st.bold("TLS"),
            thousands(tls.reports),
            thousands(tls.successful_sessions + tls.failed_sessions),
            st.pct(tls.success_pct)
        );
        if !tls.failures.is_empty() {
            let mut t = Table::new(&[("failure result type", false), ("failed sessions", true)]);
            for f in &tls.failures {
                t.row(vec![f.result_type.clone(), thousands(f.failed_sessions)]);
            }
            t.render(out, 4, st);
        }
        if !tls.by_mx.is_empty() {
            let _ = writeln!(out, "\n  {}", st.bold("TLS by MX"));
            tls_mx_table(&tls.by_mx).render(out, 4, st);
        }
    }
    if let Some(f) = &d.failure_reports {
        let _ = writeln!(
            out,
            "\n  {}  {} · {} from unknown sources",
            st.bold("Failure reports"),
            plural(f.count, "report"),
            thousands(f.from_unknown_sources)
        );
        let mut t =
            Table::new(&[("source ip", false), ("sender", false), ("reports", true), ("last", false)]);
        for s in &f.sources {
            t.row(vec![s.ip.clone(), s.sender.clone(), thousands(s.reports), datetime(s.last_arrival)]);
        }
        t.render(out, 4, st);
        let _ = writeln!(out, "\n  {}", st.bold("Latest failure reports"));
        failures_table(&f.latest, false).render(out, 4, st);
    }
    if !d.reporters.is_empty() {
        let _ = writeln!(out, "\n  {}", st.bold("Reporters"));
        reporters_table(&d.reporters).render(out, 4, st);
    }
    if !d.alerts.is_empty() {
        let _ = writeln!(out, "\n  {}", st.bold("Alerts"));
        alerts_table(&d.alerts, false).render(out, 4, st);
    }
}

fn sources_table(sources: &[Source], failing: bool) -> Table {
    let mut t = Table::new(&[
        ("ip", false),
        ("sender", false),
        ("network", false),
        ("service", false),
        ("ptr", false),
        ("asn", true),
        ("as org", false),
        ("cc", false),
        ("messages", true),
        (if failing { "failing" } else { "DMARC pass" }, true),
    ]);
    for s in sources {
        let last = if failing { thousands(s.dmarc_fail) } else { pct_text(s.dmarc_pass_pct) };
        t.row(vec![
            s.ip.clone(),
            s.sender.clone(),
            s.network.clone(),
            s.service.clone().unwrap_or_default(),
            s.ptr.clone().unwrap_or_default(),
            s.asn.map(|a| a.to_string()).unwrap_or_default(),
            s.as_org.clone().unwrap_or_default(),
            s.country.clone().unwrap_or_default(),
            thousands(s.messages),
            last,
        ]);
    }
    t.drop_empty_columns();
    t
}

fn reporters_table(reporters: &[Reporter]) -> Table {
    let mut t = Table::new(&[
        ("reporter", false),
        ("DMARC reports", true),
        ("TLS reports", true),
        ("messages", true),
        ("as reported", false),
    ]);
    for r in reporters {
        let names: Vec<&str> =
            r.org_names.iter().map(String::as_str).filter(|n| !n.eq_ignore_ascii_case(&r.reporter)).collect();
        t.row(vec![
            r.reporter.clone(),
            thousands(r.dmarc_reports),
            thousands(r.tlsrpt_reports),
            thousands(r.messages),
            names.join(", "),
        ]);
    }
    t.drop_empty_columns();
    t
}

/// The "TLS by MX" table: failed sessions per receiving MX, result type and IPs.
fn tls_mx_table(rows: &[TlsMx]) -> Table {
    let mut t = Table::new(&[
        ("receiving mx", false),
        ("result type", false),
        ("sending ip", false),
        ("receiving ip", false),
        ("failed", true),
        ("share", true),
        ("reason code", false),
        ("additional information", false),
    ]);
    for m in rows {
        t.row(vec![
            m.mx.clone(),
            m.result_type.clone(),
            m.sending_ip.clone(),
            m.receiving_ip.clone(),
            thousands(m.failed_sessions),
            m.share.clone(),
            m.failure_reason_code.clone(),
            m.additional_information.clone(),
        ]);
    }
    t.drop_empty_columns();
    t
}

/// Failure reports as a table; `with_domain` adds the domain column (`ruaflow failures`).
pub fn failures_table(entries: &[FailureEntry], with_domain: bool) -> Table {
    let mut cols = vec![("arrival", false)];
    if with_domain {
        cols.push(("domain", false));
    }
    cols.extend([
        ("source ip", false),
        ("sender", false),
        ("reporter", false),
        ("failed", false),
        ("delivery", false),
        ("dkim", false),
        ("spf domain", false),
        ("from", false),
        ("subject", false),
        ("message-id", false),
    ]);
    let mut t = Table::new(&cols);
    for e in entries {
        let mut row = vec![datetime(e.arrival)];
        if with_domain {
            row.push(e.domain.clone());
        }
        let dkim = match (&e.dkim_domain, &e.dkim_selector) {
            (Some(d), Some(s)) => format!("{d} s={s}"),
            (Some(d), None) => d.clone(),
            (None, _) => String::new(),
        };
        let subject = match &e.subject {
            Some(s) => s.clone(),
            None if e.redacted.contains("subject") => "(redacted)".to_owned(),
            None => String::new(),
        };
        row.extend([
            e.source_ip.clone().unwrap_or_default(),
            e.sender.clone(),
            e.reporter.clone(),
            e.auth_failures.clone(),
            e.delivery_result.clone().unwrap_or_default(),
            dkim,
            e.spf_domain.clone().unwrap_or_default(),
            e.header_from.clone().unwrap_or_default(),
            subject,
            e.message_id.clone().unwrap_or_default(),
        ]);
        t.row(row);
    }
    t
}

/// The alerts as a table; `with_domain` adds the domain column (the overall list).
pub fn alerts_table(alerts: &[Alert], with_domain: bool) -> Table {
    let mut cols = vec![("window start", false), ("severity", false), ("kind", false)];
    if with_domain {
        cols.push(("domain", false));
    }
    cols.extend([("observed", true), ("baseline", true), ("state", false), ("summary", false)]);
    let mut t = Table::new(&cols);
    for a in alerts {
        let mut row = vec![datetime(a.window_start), a.severity.clone(), a.kind.clone()];
        if with_domain {
            row.push(a.domain.clone());
        }
        row.extend([figure(a.observed), figure(a.baseline), a.state.clone(), a.summary.clone()]);
        t.row(row);
    }
    t
}

/// How far `ruaflow alerts` indents a summary under its alert's line.
const SUMMARY_INDENT: usize = 4;

/// The alerts as `ruaflow alerts` prints them: one aligned line per alert, each followed
/// by its whole summary wrapped to `width` columns and indented, so the advice at its
/// end is never cut off (the summary column of [`alerts_table`] is).
pub fn alerts_list(alerts: &[Alert], width: usize, st: Style) -> String {
    let mut t = Table::new(&[
        ("id", true),
        ("window start", false),
        ("severity", false),
        ("kind", false),
        ("domain", false),
        ("observed", true),
        ("baseline", true),
        ("state", false),
    ]);
    for a in alerts {
        let state = match (a.acknowledged_at, a.historical) {
            (Some(_), _) => format!("{} (acknowledged)", a.state),
            (None, true) => format!("{} (historical)", a.state),
            (None, false) => a.state.clone(),
        };
        t.row(vec![
            a.id.to_string(),
            datetime(a.window_start),
            a.severity.clone(),
            a.kind.clone(),
            a.domain.clone(),
            figure(a.observed),
            figure(a.baseline),
            state,
        ]);
    }
    let mut table = String::new();
    t.render(&mut table, 0, st);
    // The table is one header line, then one line per row (cells are single lines).
    let mut lines = table.lines();
    let mut out = String::new();
    if let Some(header) = lines.next() {
        let _ = writeln!(out, "{header}");
    }
    let indent = " ".repeat(SUMMARY_INDENT);
    let summary_width = width.saturating_sub(SUMMARY_INDENT).max(MIN_SUMMARY_WIDTH);
    for (i, (alert, line)) in alerts.iter().zip(lines).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{line}");
        for part in wrap(&terminal_safe(&alert.summary), summary_width) {
            let _ = writeln!(out, "{indent}{part}");
        }
        if let Some(at) = alert.acknowledged_at {
            let note = alert.ack_note.as_deref().map_or(String::new(), |n| format!(": {n}"));
            let line = format!("Acknowledged {}{note}", datetime(at));
            for part in wrap(&terminal_safe(&line), summary_width) {
                let _ = writeln!(out, "{indent}{part}");
            }
        }
    }
    out
}

/// The narrowest a summary is wrapped to, however narrow the terminal.
const MIN_SUMMARY_WIDTH: usize = 20;

/// `1 domain`, `3 domains`.
fn plural(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// The end of `s` in at most `max` characters, `…` first when cut: the part of a path
/// that tells files apart.
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n - max + 1));
    out
}

/// A table with aligned columns.
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
    /// No header line (a key/value grid).
    headless: bool,
}

impl Table {
    /// A table with these (header, right-aligned) columns.
    pub fn new(cols: &[(&str, bool)]) -> Self {
        Self {
            headers: cols.iter().map(|c| c.0.to_owned()).collect(),
            right: cols.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
            headless: false,
        }
    }

    /// Adds a row of untrusted cells: made terminal-safe and cut to [`MAX_CELL`]
    /// characters ([`MAX_LAST_CELL`] for the last column, which nothing follows).
    pub fn row(&mut self, cells: Vec<String>) {
        let last = cells.len().saturating_sub(1);
        let cut = |(i, c): (usize, &String)| {
            truncate(&terminal_safe(c), if i == last { MAX_LAST_CELL } else { MAX_CELL })
        };
        self.rows.push(cells.iter().enumerate().map(cut).collect());
    }

    /// Leaves out columns with no value in any row (e.g. no enrichment yet).
    pub fn drop_empty_columns(&mut self) {
        let keep: Vec<usize> = (0..self.headers.len())
            .filter(|&i| self.rows.iter().any(|r| r.get(i).is_some_and(|c| !c.is_empty())))
            .collect();
        fn pick(keep: &[usize], v: &[String]) -> Vec<String> {
            keep.iter().map(|&i| v.get(i).cloned().unwrap_or_default()).collect()
        }
        self.headers = pick(&keep, &self.headers);
        self.right = keep.iter().map(|&i| self.right[i]).collect();
        self.rows = self.rows.iter().map(|r| pick(&keep, r)).collect();
    }

    /// Appends the table to `out`, each line indented by `indent` spaces.
    pub fn render(&self, out: &mut String, indent: usize, st: Style) {
        if self.rows.is_empty() {
            return;
        }
        let width = |i: usize| {
            let cells = self.rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count());
            let head = if self.headless { 0 } else { self.headers[i].chars().count() };
            cells.chain([head]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[String]| {
            let mut s = " ".repeat(indent);
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = w.saturating_sub(cell.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    if i + 1 < widths.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_owned()
        };
        if !self.headless {
            let _ = writeln!(out, "{}", st.dim(&line(&self.headers)));
        }
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(row));
        }
    }
}

/// ANSI styling, or none.
#[derive(Clone, Copy)]
pub struct Style {
    /// Emit ANSI escapes.
    pub color: bool,
}

impl Style {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Bold.
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }

    /// Dim (headers, notes).
    pub fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }

    /// A pass percentage, green from 98%, yellow from 90%, red below.
    pub fn pct(self, value: Option<f64>) -> String {
        let text = pct_text(value);
        match value {
            Some(v) if v >= 98.0 => self.wrap("32", &text),
            Some(v) if v >= 90.0 => self.wrap("33", &text),
            Some(_) => self.wrap("31", &text),
            None => text,
        }
    }
}
