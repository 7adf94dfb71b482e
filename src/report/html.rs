//! HTML view: a [`Report`] → one self-contained page.
//!
//! Input: the report model. Output: an HTML document with inline CSS and inline SVG
//! charts (from `svg`), no script, no external asset, no web font; a Content Security
//! Policy forbids loading anything, as a second line of defence. Every string from the
//! store is untrusted and goes through [`html`] escaping; numbers under every chart are
//! also in a table.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::format::{date, datetime, figure, html, pct, pct_text, share, thousands, DAY};
use super::model::{Alert, DomainReport, Report, Reporter, Source};
use super::svg::{self, DayStack, HBar, Marker, Series};

/// Domains drawn with charts; the rest are listed in the overview table only (a
/// provider's thousands of domains would make a page no browser scrolls happily).
const MAX_DOMAIN_SECTIONS: usize = 60;
/// Series drawn separately in a categorical chart; the rest are summed as "other".
const MAX_SERIES: usize = 7;
/// Rows above which a list is folded (`<details>`) rather than shown whole.
const LONG_LIST: usize = 12;

const PASS_BOTH: &str = "#2f7d5b";
const DKIM_ONLY: &str = "#e0a03a";
const SPF_ONLY: &str = "#8db7dc";
const FAIL: &str = "#c8553d";
const OTHER: &str = "#b8b8b8";
/// Categorical colours for selectors and TLS result types (Tableau 10, muted).
const PALETTE: [&str; 7] = ["#4e79a7", "#f28e2b", "#76b7b2", "#e15759", "#59a14f", "#b07aa1", "#9c755f"];

const CSS: &str = r#"
:root{--fg:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f5f6f8;--card:#fff;--head:#17212f;--good:#1f7a4d;--warn:#b26b00;--bad:#b42318}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header.top{background:var(--head);color:#fff;padding:22px 0 20px}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
header.top .brand{font-size:12px;letter-spacing:.12em;text-transform:uppercase;color:#9fb0c6}
header.top h1{margin:2px 0 4px;font-size:24px;font-weight:600}
header.top .meta{color:#c3cfdd;font-size:13px}
main.wrap{padding-top:20px;padding-bottom:40px}
h2{font-size:20px;margin:0;font-weight:600;word-break:break-all}
h3{font-size:15px;margin:0 0 2px;font-weight:600}
h4{font-size:13px;margin:16px 0 0;font-weight:600}
.muted{color:var(--muted)}
.sub{color:var(--muted);font-size:12.5px;margin:0 0 10px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px;margin:0 0 16px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.kpi .v{font-size:21px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}
.kpi .l{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.03em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:0 0 16px}
section.domain{margin:32px 0 8px;padding-top:8px;border-top:3px solid var(--head)}
.dhead{display:flex;flex-wrap:wrap;align-items:baseline;gap:10px;margin:6px 0 14px}
.dhead .facts{color:var(--muted);font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;background:#eef2f6;color:#344054;white-space:nowrap}
.sev-critical{background:#fde8e6;color:#a3261a}.sev-warning{background:#fff3dc;color:#8a5300}.sev-info{background:#eaf1fb;color:#2b5c99}
.good{color:var(--good)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.tbl{overflow-x:auto;margin-top:10px}
details.more{margin-top:10px}
details.more>summary{cursor:pointer;color:#2f5d8a;font-size:12.5px}
nav.toc{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12.5px;margin:-6px 0 14px}
nav.toc .up{margin-left:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}
th{position:sticky;top:0;background:#fafbfc;color:var(--muted);font-weight:600;font-size:11.5px;text-transform:uppercase;letter-spacing:.04em}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:top}
td.n,th.n{text-align:right}
td.wr{white-space:normal;overflow-wrap:anywhere;min-width:16em}
.small{color:var(--muted);font-size:11.5px;max-width:14.5em;overflow:hidden;text-overflow:ellipsis}
.small.org{max-width:8em}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
tr:hover td{background:#fafbfc}
a{color:#2f5d8a;text-decoration:none}a:hover{text-decoration:underline}
svg.chart{display:block;width:100%;height:auto;margin-top:6px}
svg.chart text{font-family:inherit;fill:#667085;font-size:11px}
svg.chart .ylab{text-anchor:end}svg.chart .xlab{text-anchor:middle}
svg.chart .hlab{fill:#1d2433;font-size:12px}svg.chart .hlab .note{fill:#98a2b3}
svg.chart .hval{fill:#344054;font-size:11.5px}
svg.chart .cutlab{fill:#1d2433;font-size:11px;font-weight:600;text-anchor:middle}
svg.chart[data-inset]{margin-bottom:-2px}
svg.chart .grid{stroke:#eef0f3}svg.chart .axis{stroke:#c9ced6}
svg.chart rect:hover{opacity:.8}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:#475467}
.legend span{display:inline-flex;align-items:center}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.grid2>.card{margin:0 0 16px;min-width:0}
.empty{color:var(--muted);font-style:italic;margin:6px 0 0}
footer.wrap{color:var(--muted);font-size:12px;padding-top:0;padding-bottom:32px}
@media (max-width:820px){.grid2{grid-template-columns:1fr}.wrap{padding:0 12px}.card{padding:12px}}
@media print{
@page{margin:12mm}
body{background:#fff;font-size:12px}
header.top{background:#fff;color:#000;padding:0 0 8px;border-bottom:2px solid #000}
header.top .brand,header.top .meta{color:#333}
.wrap{max-width:none;padding:0}
.card{border-color:#c9ced6;padding:10px 14px;margin-bottom:10px}
.grid2{grid-template-columns:1fr 1fr;gap:10px}
svg.chart,.kpis,.dhead,tr,.legend{break-inside:avoid}
h3,.sub,.legend,nav.toc{break-after:avoid}
section.domain{break-before:page;border-top:none}
.tbl{overflow:visible}
th{position:static}
thead{display:table-header-group}
tr{break-inside:avoid}
details.more>summary{display:none}
details.more::details-content{content-visibility:visible;display:block}
nav.toc .up{display:none}
a{color:inherit}
tr:hover td{background:none}
}
"#;

/// Renders the page.
pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(1 << 16);
    let scope = match &report.window.domain {
        Some(d) => d.clone(),
        None => format!("{} domains", thousands(report.totals.domains)),
    };
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="ruaflow {}">
<title>DMARC report · {}</title>
<style>{CSS}</style></head>
<body><header class="top" id="top"><div class="wrap"><div class="brand">ruaflow</div><h1>DMARC &amp; TLS report</h1><div class="meta">{}</div></div></header>
<main class="wrap">
"#,
        env!("CARGO_PKG_VERSION"),
        html(&scope),
        window_text(report)
    );
    summary(&mut h, report);
    overview(&mut h, report);
    if !report.alerts.is_empty() {
        h.push_str(
            r#"<div class="card"><h3>Recent alerts</h3><p class="sub">Newest first, all domains.</p>"#,
        );
        alerts_table(&mut h, &report.alerts, true);
        h.push_str("</div>");
    }
    for (i, d) in report.domains.iter().take(MAX_DOMAIN_SECTIONS).enumerate() {
        domain(&mut h, i, d);
    }
    if report.domains.len() > MAX_DOMAIN_SECTIONS {
        let _ = write!(
            h,
            r#"<p class="empty">Charts are drawn for the {MAX_DOMAIN_SECTIONS} domains with the most messages; use <code>--domain</code> for any other.</p>"#
        );
    }
    others(&mut h, report);
    let _ = writeln!(
        h,
        "</main><footer class=\"wrap\">Generated by ruaflow {} from the report days in the store. Times are UTC.</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn window_text(report: &Report) -> String {
    let w = &report.window;
    let mut scope = w.scope();
    scope[..1].make_ascii_uppercase();
    match (&w.first_date, &w.last_date) {
        (Some(a), Some(b)) => html(&format!(
            "{scope}: reports from {a} to {b} ({} days with reports)",
            thousands(w.report_days)
        )),
        _ => html(&format!("{scope}: no reports")),
    }
}

fn summary(h: &mut String, r: &Report) {
    let t = &r.totals;
    let tls = pct(t.tls_successful_sessions, t.tls_successful_sessions + t.tls_failed_sessions);
    h.push_str(r#"<div class="kpis">"#);
    kpi(h, "Messages", &thousands(t.messages), "");
    kpi(h, "DMARC pass", &pct_text(t.dmarc_pass_pct), pass_class(t.dmarc_pass_pct));
    kpi(h, "Domains", &thousands(t.domains), "");
    kpi(h, "DMARC reports", &thousands(t.dmarc_reports), "");
    kpi(h, "TLS reports", &thousands(t.tlsrpt_reports), "");
    kpi(h, "TLS success", &pct_text(tls), pass_class(tls));
    kpi(h, "Failure reports", &thousands(t.failure_reports), "");
    kpi(h, "Alerts", &thousands(t.alerts), if t.alerts > 0 { "bad" } else { "" });
    kpi(h, "Dead letters", &thousands(t.dead_letters), if t.dead_letters > 0 { "warn" } else { "" });
    h.push_str("</div>");
}

/// A KPI tile; `value` is escaped, `class` is one of ours.
fn kpi(h: &mut String, label: &str, value: &str, class: &str) {
    let _ = write!(
        h,
        r#"<div class="kpi"><div class="l">{}</div><div class="v {class}">{}</div></div>"#,
        html(label),
        html(value)
    );
}

fn pass_class(value: Option<f64>) -> &'static str {
    match value {
        Some(v) if v >= 98.0 => "good",
        Some(v) if v >= 90.0 => "warn",
        Some(_) => "bad",
        None => "",
    }
}

fn overview(h: &mut String, r: &Report) {
    if r.domains.is_empty() {
        h.push_str(
            r#"<div class="card"><p class="empty">No reports in the store for this window.</p></div>"#,
        );
        return;
    }
    h.push_str(r#"<div class="card"><h3>Domains</h3><p class="sub">Most messages first.</p>"#);
    let mut t = Table::new(&[
        ("Domain", false),
        ("Policy", false),
        ("Messages", true),
        ("DMARC pass", true),
        ("DKIM", true),
        ("SPF", true),
        ("DKIM only", true),
        ("Quarant.", true),
        ("Reject", true),
        ("TLS ok", true),
        ("Alerts", true),
    ]);
    for (i, d) in r.domains.iter().enumerate() {
        let v = &d.volume;
        let name = if i < MAX_DOMAIN_SECTIONS {
            format!(r##"<a href="#d{i}">{}</a>"##, html(domain_name(d)))
        } else {
            html(domain_name(d))
        };
        let tls = d.tls.as_ref().and_then(|t| t.success_pct);
        let incidents = d.alerts.iter().filter(|a| a.state == "firing").count();
        t.row(vec![
            name,
            html(&policy_text(d)),
            thousands(v.messages),
            colored_pct(v.dmarc_pass_pct),
            pct_text(v.dkim_aligned_pct),
            pct_text(v.spf_aligned_pct),
            thousands(v.dkim_only_pass),
            thousands(v.dispositions.quarantine),
            thousands(v.dispositions.reject),
            colored_pct(tls),
            if incidents == 0 { "0".into() } else { format!(r#"<span class="bad">{incidents}</span>"#) },
        ]);
    }
    t.render(h);
    h.push_str("</div>");
}

fn colored_pct(value: Option<f64>) -> String {
    format!(r#"<span class="{}">{}</span>"#, pass_class(value), pct_text(value))
}

fn domain_name(d: &DomainReport) -> &str {
    if d.domain.is_empty() {
        "(no policy domain)"
    } else {
        &d.domain
    }
}

fn policy_text(d: &DomainReport) -> String {
    let Some(p) = &d.policy else { return String::new() };
    let mut s = format!("p={}", p.p.as_deref().unwrap_or("–"));
    if let Some(sp) = &p.sp {
        let _ = write!(s, " sp={sp}");
    }
    if let Some(pct) = p.pct.filter(|p| *p != 100) {
        let _ = write!(s, " pct={pct}");
    }
    s
}

fn domain(h: &mut String, i: usize, d: &DomainReport) {
    let v = &d.volume;
    let _ = write!(
        h,
        r#"<section class="domain" id="d{i}"><div class="dhead"><h2>{}</h2>"#,
        html(domain_name(d))
    );
    if d.policy.is_some() {
        let _ = write!(h, r#"<span class="badge">{}</span>"#, html(&policy_text(d)));
    }
    let _ = write!(
        h,
        r#"<span class="facts">{} DMARC reports · {} TLS reports · {} sources</span></div>"#,
        thousands(d.dmarc_reports),
        thousands(d.tlsrpt_reports),
        thousands(d.sources)
    );
    if v.messages > 0 {
        h.push_str(r#"<div class="kpis">"#);
        kpi(h, "Messages", &thousands(v.messages), "");
        kpi(h, "DMARC pass", &pct_text(v.dmarc_pass_pct), pass_class(v.dmarc_pass_pct));
        kpi(h, "DKIM aligned", &pct_text(v.dkim_aligned_pct), "");
        kpi(h, "SPF aligned", &pct_text(v.spf_aligned_pct), "");
        kpi(h, "DKIM-only pass", &thousands(v.dkim_only_pass), "");
        kpi(h, "Quarantined", &thousands(v.dispositions.quarantine), "");
        kpi(h, "Rejected", &thousands(v.dispositions.reject), "");
        h.push_str("</div>");
    }
    // The domain's own contents: its cards, in order, and the way back up.
    let mut toc: Vec<(&str, &str)> = Vec::new();
    if !d.alerts.is_empty() {
        toc.push(("alerts", "Alerts"));
    }
    if v.messages > 0 {
        toc.extend([("volume", "Daily volume"), ("sources", "Sources"), ("dkim", "DKIM selectors")]);
    }
    if d.tls.is_some() {
        toc.push(("tls", "TLS"));
    }
    if d.failure_reports.is_some() {
        toc.push(("failures", "Failure reports"));
    }
    toc.push(("reporters", "Reporters"));
    h.push_str(r#"<nav class="toc" aria-label="Contents">"#);
    for (id, name) in &toc {
        let _ = write!(h, r##"<a href="#d{i}-{id}">{name}</a>"##);
    }
    h.push_str(r##"<a class="up" href="#top">↑ All domains</a></nav>"##);
    if !d.alerts.is_empty() {
        let _ = write!(
            h,
            r#"<div class="card" id="d{i}-alerts"><h3>Alerts</h3><p class="sub">Newest first; also flagged on the daily chart.</p>"#
        );
        alerts_table(h, &d.alerts, false);
        h.push_str("</div>");
    }
    if v.messages > 0 {
        volume_chart(h, i, d);
        let _ = write!(h, r#"<div class="grid2" id="d{i}-sources">"#);
        sources_card(h, "Top sources", "By messages; bar split by DMARC result.", &d.top_sources, false);
        sources_card(h, "Top failing sources", "By DMARC-failing messages.", &d.top_failing_sources, true);
        h.push_str("</div>");
        selectors_card(h, i, d);
    }
    tls_card(h, i, d);
    failures_card(h, i, d);
    let _ = write!(
        h,
        r#"<div class="card" id="d{i}-reporters"><h3>Reporters</h3><p class="sub">Who reported on this domain in the window.</p>"#
    );
    reporters_table(h, &d.reporters);
    h.push_str("</div></section>\n");
}

/// Reporters named once (the registrable domain of their address), with the org names
/// their reports carry beneath when those say something else.
fn reporters_table(h: &mut String, reporters: &[Reporter]) {
    let mut t = Table::new(&[
        ("Reporter", false),
        ("DMARC reports", true),
        ("TLS reports", true),
        ("Messages", true),
    ]);
    for r in reporters {
        let names: Vec<&str> =
            r.org_names.iter().map(String::as_str).filter(|n| !n.eq_ignore_ascii_case(&r.reporter)).collect();
        let cell = if names.is_empty() {
            html(&r.reporter)
        } else {
            let names = names.join(" · ");
            format!(r#"{}<div class="small" title="{n}">{n}</div>"#, html(&r.reporter), n = html(&names))
        };
        t.row(vec![cell, thousands(r.dmarc_reports), thousands(r.tlsrpt_reports), thousands(r.messages)]);
    }
    if reporters.len() > LONG_LIST {
        t.render_collapsed(h, &format!("All {} reporters", thousands(reporters.len() as u64)));
    } else {
        t.render(h);
    }
}

fn volume_chart(h: &mut String, i: usize, d: &DomainReport) {
    let series = vec![
        Series { name: "DKIM + SPF aligned".into(), color: PASS_BOTH },
        Series { name: "DKIM only".into(), color: DKIM_ONLY },
        Series { name: "SPF only".into(), color: SPF_ONLY },
        Series { name: "DMARC fail".into(), color: FAIL },
    ];
    let by_day: HashMap<i64, [u64; 4]> =
        d.daily.iter().map(|x| (x.day, [x.pass_both, x.dkim_only, x.spf_only, x.fail])).collect();
    let days = svg::day_axis(d.daily.iter().map(|x| x.day), d.alerts.iter().map(|a| a.window_start));
    let chart = DayStack {
        values: days.iter().map(|day| by_day.get(day).map_or(vec![0; 4], |v| v.to_vec())).collect(),
        days,
        series: series.clone(),
        markers: d.alerts.iter().map(alert_marker).collect(),
        unit: "messages",
    };
    let _ = write!(h, r#"<div class="card" id="d{i}-volume"><h3>Daily volume by result</h3>"#);
    let _ = write!(
        h,
        r#"<p class="sub">DMARC messages per report day.{}{}{}</p>"#,
        if d.alerts.is_empty() { "" } else { " Flags mark alerts (hover for details)." },
        axis_note(&chart.days),
        cut_note(&chart)
    );
    h.push_str(&svg::legend(&series));
    h.push_str(&svg::day_stack(&chart, &format!("Daily DMARC volume for {}", domain_name(d))));
    let mut t = Table::new(&[
        ("Day", false),
        ("Messages", true),
        ("DKIM + SPF", true),
        ("DKIM only", true),
        ("SPF only", true),
        ("Fail", true),
        ("Pass", true),
    ]);
    // Every day of the chart, newest first; a day without reports says so.
    let by_day: HashMap<i64, &super::model::DayVolume> = d.daily.iter().map(|x| (x.day, x)).collect();
    for day in chart.days.iter().rev() {
        t.row(match by_day.get(day) {
            Some(x) => vec![
                date(x.day),
                thousands(x.messages),
                thousands(x.pass_both),
                thousands(x.dkim_only),
                thousands(x.spf_only),
                thousands(x.fail),
                pct_text(pct(x.messages - x.fail, x.messages)),
            ],
            None => no_reports(*day, 7),
        });
    }
    t.render_collapsed(h, &days_summary(&chart.days));
    h.push_str("</div>");
}

/// A table row for a day without reports: its date, then dashes.
fn no_reports(day: i64, columns: usize) -> Vec<String> {
    let mut row = vec![date(day), r#"<span class="empty">no reports</span>"#.to_owned()];
    row.extend(std::iter::repeat_n("–".to_owned(), columns.saturating_sub(2)));
    row
}

/// The summary line of a collapsed daily table.
fn days_summary(days: &[i64]) -> String {
    match (days.first(), days.last()) {
        (Some(first), Some(last)) => {
            format!(
                "Daily figures: {} days, {} to {}",
                thousands(days.len() as u64),
                date(*first),
                date(*last)
            )
        }
        _ => "Daily figures".to_owned(),
    }
}

/// Says so when a chart is cut above its ordinary days (a flood; see `svg::flood_cut`).
fn cut_note(chart: &DayStack) -> String {
    let Some(cut) = svg::flood_cut(chart) else { return String::new() };
    let peak = chart.values.iter().map(|v| v.iter().sum::<u64>()).max().unwrap_or(0);
    format!(
        " The highest day ({}) is far above the ordinary days: the chart is cut above {} so they stay readable; cut bars end in a zigzag under their total, and the strip above shows every day to one scale.",
        thousands(peak),
        thousands(cut)
    )
}

/// Says so when a day axis skips days (a long, sparse span; see `svg::day_axis`).
fn axis_note(days: &[i64]) -> &'static str {
    match (days.first(), days.last()) {
        (Some(first), Some(last)) if ((last - first) / DAY + 1) as usize != days.len() => {
            " Days without reports are left out of the axis."
        }
        _ => "",
    }
}

fn alert_marker(a: &Alert) -> Marker {
    Marker {
        day: a.window_start,
        color: severity_color(&a.severity),
        label: format!(
            "{} {} ({}): {} — observed {}, baseline {}",
            a.severity,
            a.kind,
            datetime(a.window_start),
            a.summary,
            figure(a.observed),
            figure(a.baseline)
        ),
    }
}

fn severity_color(severity: &str) -> &'static str {
    match severity_class(severity) {
        "sev-critical" => "#b42318",
        "sev-warning" => "#c77700",
        _ => "#475467",
    }
}

fn severity_class(severity: &str) -> &'static str {
    match severity.to_ascii_lowercase().as_str() {
        "critical" | "high" | "page" | "error" => "sev-critical",
        "warning" | "warn" | "medium" => "sev-warning",
        _ => "sev-info",
    }
}

fn sources_card(h: &mut String, title: &str, sub: &str, sources: &[Source], failing: bool) {
    let _ = write!(h, r#"<div class="card"><h3>{}</h3><p class="sub">{}</p>"#, html(title), html(sub));
    if sources.is_empty() {
        let text = if failing { "No DMARC-failing sources in the window." } else { "No sources." };
        let _ = write!(h, r#"<p class="empty">{text}</p></div>"#);
        return;
    }
    let series = [
        Series { name: "DMARC pass".into(), color: PASS_BOTH },
        Series { name: "DMARC fail".into(), color: FAIL },
    ];
    let rows: Vec<HBar> = sources
        .iter()
        .map(|s| HBar {
            label: s.ip.clone(),
            note: s.ptr.clone().or_else(|| s.as_org.clone()).unwrap_or_default(),
            parts: if failing { vec![0, s.dmarc_fail] } else { vec![s.dmarc_pass, s.dmarc_fail] },
        })
        .collect();
    if !failing {
        h.push_str(&svg::legend(&series));
    }
    h.push_str(&svg::hbars(&rows, &series, "messages", title));
    // Two-line cells keep seven facts readable in a half-width card.
    let enriched = sources.iter().any(|s| s.asn.is_some() || s.as_org.is_some() || s.country.is_some());
    let mut cols = vec![("Source", false), ("Sender", false)];
    if enriched {
        cols.extend([("AS", false), ("CC", false)]);
    }
    cols.extend([("Messages", true), (if failing { "Failing" } else { "Pass" }, true)]);
    let mut t = Table::new(&cols);
    for s in sources {
        let second = match &s.ptr {
            Some(ptr) => format!("{ptr} · {}", s.network),
            None => s.network.clone(),
        };
        let mut row = vec![format!(
            r#"<span class="mono">{}</span><div class="small" title="{t}">{t}</div>"#,
            html(&s.ip),
            t = html(&second)
        )];
        row.push(sender_cell(s));
        if enriched {
            let asn = s.asn.map(|a| format!("AS{a}")).unwrap_or_default();
            row.push(format!(
                r#"{}<div class="small org" title="{o}">{o}</div>"#,
                html(&asn),
                o = html(s.as_org.as_deref().unwrap_or(""))
            ));
            row.push(html(s.country.as_deref().unwrap_or("")));
        }
        row.push(thousands(s.messages));
        // Passing mail from a source that is not the domain's is no reassurance: a
        // replayed message passes DMARC.
        let pass = if s.sender == "unknown" {
            format!(r#"<span class="bad">{}</span>"#, pct_text(s.dmarc_pass_pct))
        } else {
            colored_pct(s.dmarc_pass_pct)
        };
        row.push(if failing { thousands(s.dmarc_fail) } else { pass });
        t.row(row);
    }
    t.render(h);
    h.push_str("</div>");
}

/// The sender status of a source as a badge (red when it is not one of the domain's
/// senders), with the service below it and the reason on hover.
fn sender_cell(s: &Source) -> String {
    let class = if s.sender == "unknown" { "badge bad" } else { "badge" };
    let service = s
        .service
        .as_deref()
        .map_or(String::new(), |name| format!(r#"<div class="small" title="{n}">{n}</div>"#, n = html(name)));
    format!(
        r#"<span class="{class}" title="{why}">{status}</span>{service}"#,
        why = html(&s.sender_reason),
        status = html(&s.sender)
    )
}

fn selectors_card(h: &mut String, i: usize, d: &DomainReport) {
    let _ = write!(
        h,
        r#"<div class="card" id="d{i}-dkim"><h3>DKIM-only pass by selector</h3><p class="sub">DKIM-aligned pass without SPF alignment, per signing domain and selector: the volume a DKIM replay flood shows up in. A surge here names the key to rotate.</p>"#
    );
    let key = |dkim_domain: &str, selector: &str| {
        if selector.is_empty() {
            format!("d={dkim_domain}")
        } else {
            format!("s={selector} d={dkim_domain}")
        }
    };
    let points: Vec<(String, i64, u64)> = d
        .selector_daily
        .iter()
        .map(|x| (key(&x.dkim_domain, &x.selector), x.day, x.dkim_only_pass))
        .collect();
    if points.is_empty() {
        h.push_str(r#"<p class="empty">No DKIM-only pass volume in the window.</p>"#);
    } else {
        let days = svg::day_axis(d.daily.iter().map(|x| x.day), points.iter().map(|p| p.1));
        let chart = categorical(&points, days, "messages");
        let note = format!("{}{}", axis_note(&chart.days), cut_note(&chart));
        if !note.is_empty() {
            let _ = write!(h, r#"<p class="sub">{}</p>"#, note.trim_start());
        }
        h.push_str(&svg::legend(&chart.series));
        h.push_str(&svg::day_stack(&chart, "DKIM-only pass by selector"));
    }
    let mut t = Table::new(&[
        ("Signing domain", false),
        ("Selector", false),
        ("Messages", true),
        ("Verified", true),
        ("DKIM-only pass", true),
    ]);
    for s in &d.selectors {
        t.row(vec![
            html(&s.dkim_domain),
            if s.selector.is_empty() { "–".into() } else { html(&s.selector) },
            thousands(s.messages),
            pct_text(pct(s.dkim_pass, s.messages)),
            thousands(s.dkim_only_pass),
        ]);
    }
    t.render(h);
    h.push_str("</div>");
}

fn tls_card(h: &mut String, i: usize, d: &DomainReport) {
    let Some(tls) = &d.tls else { return };
    let _ = write!(
        h,
        r#"<div class="card" id="d{i}-tls"><h3>TLS failures per day by result type</h3><p class="sub">SMTP TLS reports (RFC 8460): {} reports, {} sessions, {} successful.</p>"#,
        thousands(tls.reports),
        thousands(tls.successful_sessions + tls.failed_sessions),
        pct_text(tls.success_pct)
    );
    let mut points: Vec<(String, i64, u64)> =
        tls.failures_daily.iter().map(|x| (x.result_type.clone(), x.day, x.failed_sessions)).collect();
    // Failed sessions a report counted without failure details still count.
    for day in &tls.daily {
        let detailed: u64 =
            tls.failures_daily.iter().filter(|x| x.day == day.day).map(|x| x.failed_sessions).sum();
        if day.failed_sessions > detailed {
            points.push(("(no details)".into(), day.day, day.failed_sessions - detailed));
        }
    }
    let days = svg::day_axis(tls.daily.iter().map(|x| x.day), []);
    if points.is_empty() {
        h.push_str(r#"<p class="empty">No failed TLS sessions in the window.</p>"#);
    } else {
        let chart = categorical(&points, days.clone(), "failed sessions");
        let note = cut_note(&chart);
        if !note.is_empty() {
            let _ = write!(h, r#"<p class="sub">{}</p>"#, note.trim_start());
        }
        h.push_str(&svg::legend(&chart.series));
        h.push_str(&svg::day_stack(&chart, "TLS failures per day"));
    }
    let mut t = Table::new(&[("Result type", false), ("Failed sessions", true), ("Share of sessions", true)]);
    let sessions = tls.successful_sessions + tls.failed_sessions;
    for f in &tls.failures {
        t.row(vec![html(&f.result_type), thousands(f.failed_sessions), share(f.failed_sessions, sessions).1]);
    }
    t.render(h);
    if !tls.by_mx.is_empty() {
        h.push_str(r#"<h4>TLS by MX</h4>"#);
        let mut t = Table::new(&[
            ("Receiving MX", false),
            ("Result type", false),
            ("Sending IP", false),
            ("Receiving IP", false),
            ("Failed", true),
            ("Share of sessions", true),
            ("Reason code", false),
            ("Additional information", false),
        ]);
        t.wrap = 2;
        for m in &tls.by_mx {
            t.row(vec![
                html(&m.mx),
                html(&m.result_type),
                html(&m.sending_ip),
                html(&m.receiving_ip),
                thousands(m.failed_sessions),
                html(&m.share),
                html(&m.failure_reason_code),
                html(&m.additional_information),
            ]);
        }
        t.render(h);
    }
    let mut t = Table::new(&[("Day", false), ("Successful", true), ("Failed", true), ("Success", true)]);
    let by_day: HashMap<i64, &super::model::TlsDay> = tls.daily.iter().map(|x| (x.day, x)).collect();
    for day in days.iter().rev() {
        t.row(match by_day.get(day) {
            Some(x) => vec![
                date(x.day),
                thousands(x.successful_sessions),
                thousands(x.failed_sessions),
                colored_pct(pct(x.successful_sessions, x.successful_sessions + x.failed_sessions)),
            ],
            None => no_reports(*day, 4),
        });
    }
    t.render_collapsed(h, &days_summary(&days));
    h.push_str("</div>");
}

/// DMARC failure reports: per source (with its sender status) and the latest reports,
/// as stored (redacted unless the configuration allowed more).
fn failures_card(h: &mut String, i: usize, d: &DomainReport) {
    let Some(f) = &d.failure_reports else { return };
    let _ = write!(
        h,
        r#"<div class="card" id="d{i}-failures"><h3>Failure reports</h3><p class="sub">DMARC failure (forensic) reports: {} in the window, {} about sources that are not known senders of the domain.</p>"#,
        thousands(f.count),
        thousands(f.from_unknown_sources)
    );
    let mut t = Table::new(&[("Source IP", false), ("Sender", false), ("Reports", true), ("Latest", false)]);
    for s in &f.sources {
        let sender = if s.sender == "unknown" {
            format!(r#"<span class="bad">{}</span>"#, html(&s.sender))
        } else {
            html(&s.sender)
        };
        t.row(vec![html(&s.ip), sender, thousands(s.reports), datetime(s.last_arrival)]);
    }
    t.render(h);
    h.push_str(r#"<h4>Latest failure reports</h4>"#);
    let mut t = Table::new(&[
        ("Arrival", false),
        ("Source IP", false),
        ("Sender", false),
        ("Reporter", false),
        ("Failed", false),
        ("Delivery", false),
        ("DKIM", false),
        ("SPF domain", false),
        ("From", false),
        ("Subject", false),
        ("Message-ID", false),
    ]);
    t.wrap = 2;
    for e in &f.latest {
        let dkim = match (&e.dkim_domain, &e.dkim_selector) {
            (Some(d), Some(s)) => format!("{d} s={s}"),
            (Some(d), None) => d.clone(),
            (None, _) => String::new(),
        };
        let subject = match &e.subject {
            Some(s) => html(s),
            None if e.redacted.contains("subject") => r#"<span class="muted">(redacted)</span>"#.to_owned(),
            None => String::new(),
        };
        t.row(vec![
            datetime(e.arrival),
            html(e.source_ip.as_deref().unwrap_or_default()),
            html(&e.sender),
            html(&e.reporter),
            html(&e.auth_failures),
            html(e.delivery_result.as_deref().unwrap_or_default()),
            html(&dkim),
            html(e.spf_domain.as_deref().unwrap_or_default()),
            html(e.header_from.as_deref().unwrap_or_default()),
            subject,
            html(e.message_id.as_deref().unwrap_or_default()),
        ]);
    }
    t.render(h);
    h.push_str("</div>");
}

/// A stacked day chart of (series name, day, value) points: the biggest series drawn
/// separately, the rest summed as "other".
fn categorical(points: &[(String, i64, u64)], days: Vec<i64>, unit: &'static str) -> DayStack {
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for (name, _, v) in points {
        *totals.entry(name).or_default() += v;
    }
    let mut names: Vec<(&str, u64)> = totals.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let shown = if names.len() > MAX_SERIES { MAX_SERIES - 1 } else { names.len() };
    let mut series: Vec<Series> = names[..shown]
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Series { name: (*name).to_owned(), color: PALETTE[i % PALETTE.len()] })
        .collect();
    if shown < names.len() {
        series.push(Series { name: format!("{} others", names.len() - shown), color: OTHER });
    }
    let index: HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, (n, _))| (*n, i.min(shown))).collect();
    let position: HashMap<i64, usize> = days.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let mut values = vec![vec![0u64; series.len()]; days.len()];
    for (name, day, v) in points {
        if let (Some(&s), Some(&d)) = (index.get(name.as_str()), position.get(day)) {
            values[d][s] += v;
        }
    }
    DayStack { days, series, values, markers: Vec::new(), unit }
}

fn alerts_table(h: &mut String, alerts: &[Alert], with_domain: bool) {
    let mut cols = vec![("Window", false), ("Severity", false), ("Kind", false)];
    if with_domain {
        cols.push(("Domain", false));
    }
    cols.extend([("Observed", true), ("Baseline", true), ("State", false), ("Summary", false)]);
    let mut t = Table::new(&cols);
    for a in alerts {
        let mut row = vec![
            html(&datetime(a.window_start)),
            format!(r#"<span class="badge {}">{}</span>"#, severity_class(&a.severity), html(&a.severity)),
            html(&a.kind),
        ];
        if with_domain {
            row.push(html(&a.domain));
        }
        row.extend([figure(a.observed), figure(a.baseline), html(&a.state), html(&a.summary)]);
        t.row(row);
    }
    t.wrap = 1;
    t.render(h);
}

fn others(h: &mut String, r: &Report) {
    // With one domain its own Reporters card already says it all.
    if r.domains.len() > 1 {
        h.push_str(r#"<div class="card"><h3>Reporters</h3><p class="sub">All domains in this report.</p>"#);
        reporters_table(h, &r.reporters);
        h.push_str("</div>");
    }
    let dl = &r.dead_letters;
    let _ = write!(
        h,
        r#"<div class="card"><h3>Dead letters</h3><p class="sub">{} inputs held no readable report{}. The store keeps each with its input's bytes: <code>ruaflow dead-letters</code> lists them all, <code>ruaflow reprocess</code> reads them again after an upgrade or a fix.</p>"#,
        thousands(dl.count),
        if dl.latest.is_empty() { "" } else { "; the latest are below" }
    );
    let mut t = Table::new(&[("Received", false), ("Origin", false), ("Reason", false)]);
    for l in &dl.latest {
        let origin =
            if l.location.is_empty() { l.origin.clone() } else { format!("{} › {}", l.origin, l.location) };
        t.row(vec![html(&datetime(l.received_at)), html(&origin), html(&l.reason)]);
    }
    t.wrap = 2;
    t.render(h);
    h.push_str("</div>");
}

/// An HTML table of cells that are already escaped (or built from numbers).
struct Table {
    headers: Vec<(&'static str, bool)>,
    rows: Vec<Vec<String>>,
    /// How many trailing columns may wrap (summaries, paths, reasons).
    wrap: usize,
}

impl Table {
    fn new(cols: &[(&'static str, bool)]) -> Self {
        Self { headers: cols.to_vec(), rows: Vec::new(), wrap: 0 }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends the table whole (no scroll box: the page prints as it reads).
    fn render(&self, h: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        h.push_str(r#"<div class="tbl"><table><thead><tr>"#);
        for (name, right) in &self.headers {
            let _ = write!(h, "<th{}>{}</th>", if *right { r#" class="n""# } else { "" }, html(name));
        }
        h.push_str("</tr></thead><tbody>");
        let wrap_from = self.headers.len().saturating_sub(self.wrap);
        for row in &self.rows {
            h.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let class = match (self.headers.get(i).is_some_and(|c| c.1), i >= wrap_from) {
                    (true, _) => r#" class="n""#,
                    (false, true) => r#" class="wr""#,
                    _ => "",
                };
                let _ = write!(h, "<td{class}>{cell}</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table></div>");
    }

    /// Appends the table folded under `summary` (long lists: every day of the range),
    /// closed on screen and printed open.
    fn render_collapsed(&self, h: &mut String, summary: &str) {
        if self.rows.is_empty() {
            return;
        }
        let _ = write!(h, r#"<details class="more"><summary>{}</summary>"#, html(summary));
        self.render(h);
        h.push_str("</details>");
    }
}
