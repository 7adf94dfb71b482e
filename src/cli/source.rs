//! `ruaflow source IP --db FILE [--json]`: everything the store knows about one address
//! — how it stands with each policy domain it sent as (the sender model's status, why,
//! since when, volumes, DKIM keys), its enrichment, its daily volume on the last days it
//! was seen, and the alerts that named it. The work is in `crate::report::profile`.
//!
//! Exit status: 0 when the store knows the address, 1 when nothing names it (no report,
//! no enrichment, no alert: said on stdout, and `"seen": false` with `--json`), 2 for an
//! address that is not one or a store that cannot be read.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::list_sources::as_name;
use crate::report::format::{pct_text, terminal_safe, thousands};
use crate::report::profile::{self, Profile, DAILY_DAYS};
use crate::report::text::{Style, Table};
use crate::report::{query, write_stdout};

/// Arguments of `ruaflow source`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The address: IPv4 or IPv6 (`[…]` brackets allowed).
    #[arg(value_name = "IP", value_parser = parse_ip)]
    pub ip: IpAddr,
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// One JSON object (the whole profile).
    #[arg(long)]
    pub json: bool,
}

/// Reads an address as typed; anything else is refused with an example.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(trimmed);
    bare.parse()
        .map_err(|_| format!("{text:?} is not an IP address: expected e.g. 192.0.2.25 or 2001:db8::25"))
}

/// Prints the profile; exit 1 when the store knows nothing of the address.
pub fn run(args: SourceArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.db)?;
    let profile = profile::load(&conn, args.ip)?;
    if args.json {
        write_stdout(&format!("{}\n", serde_json::to_string(&profile)?))?;
    } else {
        write_stdout(&render(&profile))?;
    }
    Ok(if profile.seen { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The profile as terminal text.
fn render(p: &Profile) -> String {
    let st = Style { color: false };
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", p.ip, p.network);
    if !p.seen {
        let _ = writeln!(out, "nothing in this store names {}: no report, no enrichment, no alert", p.ip);
        return out;
    }
    if let Some(e) = &p.enrichment {
        let field = |out: &mut String, label: &str, value: String| {
            if !value.is_empty() {
                let _ = writeln!(out, "  {label:<12} {}", terminal_safe(&value));
            }
        };
        let with = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => format!("{a} ({b})"),
            (a, _) => a.clone().unwrap_or_default(),
        };
        field(&mut out, "reverse DNS", with(&e.ptr, &e.ptr_base));
        let asn = e.asn.and_then(|a| u64::try_from(a).ok());
        field(
            &mut out,
            "AS",
            with(&Some(as_name(asn, e.as_name.as_deref())).filter(|s| !s.is_empty()), &e.as_domain),
        );
        field(&mut out, "country", e.country.clone().unwrap_or_default());
        let named = match (&e.service_kind, &e.service_by) {
            (Some(kind), Some(by)) => Some(format!("{kind}, named by {by}")),
            (Some(kind), None) => Some(kind.clone()),
            (None, by) => by.as_ref().map(|by| format!("named by {by}")),
        };
        field(&mut out, "service", with(&e.service, &named));
        field(&mut out, "first stored", e.first_seen.clone());
    }
    if !p.domains.is_empty() {
        let _ = writeln!(out, "\nAs a sender of");
        let mut t = Table::new(&[
            ("domain", false),
            ("status", false),
            ("since", false),
            ("first", false),
            ("last", false),
            ("days", true),
            ("messages", true),
            ("DMARC pass", true),
            ("DKIM aligned", true),
            ("SPF aligned", true),
            ("DKIM-only", true),
            ("reason", false),
        ]);
        for d in &p.domains {
            t.row(vec![
                d.domain.clone(),
                d.status.clone(),
                d.status_since.clone(),
                d.first_day.clone(),
                d.last_day.clone(),
                thousands(d.days_seen),
                thousands(d.messages),
                pct_text(d.dmarc_pass_pct),
                pct_text(d.dkim_aligned_pct),
                pct_text(d.spf_aligned_pct),
                thousands(d.dkim_only_pass),
                d.reason.clone(),
            ]);
        }
        t.render(&mut out, 2, st);
        let mut keys = Table::new(&[("domain", false), ("DKIM key (signing domain/selector)", false)]);
        for d in &p.domains {
            for key in &d.dkim_keys {
                keys.row(vec![d.domain.clone(), key.clone()]);
            }
        }
        if p.domains.iter().any(|d| !d.dkim_keys.is_empty()) {
            let _ = writeln!(out, "\nDKIM keys it signed with");
            keys.render(&mut out, 2, st);
        }
    }
    if !p.daily.is_empty() {
        let _ = writeln!(out, "\nLast {DAILY_DAYS} days seen");
        let mut t = Table::new(&[
            ("day", false),
            ("domain", false),
            ("messages", true),
            ("DMARC pass", true),
            ("DKIM aligned", true),
            ("SPF aligned", true),
            ("reporters", true),
        ]);
        for d in &p.daily {
            t.row(vec![
                d.day.clone(),
                d.domain.clone(),
                thousands(d.messages),
                thousands(d.dmarc_pass),
                thousands(d.dkim_aligned_pass),
                thousands(d.spf_aligned_pass),
                thousands(d.reporters),
            ]);
        }
        t.render(&mut out, 2, st);
    }
    let _ = writeln!(out, "\nAlerts that named it: {}", thousands(p.alerts_total));
    let mut t = Table::new(&[
        ("id", true),
        ("day", false),
        ("kind", false),
        ("domain", false),
        ("state", false),
        ("severity", false),
        ("messages", true),
    ]);
    for a in &p.alerts {
        let mut state = a.state.clone();
        if a.historical {
            state.push_str(" (historical)");
        }
        if a.acknowledged {
            state.push_str(" (acknowledged)");
        }
        t.row(vec![
            a.id.to_string(),
            a.day.clone(),
            a.kind.clone(),
            a.domain.clone(),
            state,
            a.severity.clone(),
            a.messages.map(thousands).unwrap_or_default(),
        ]);
    }
    t.render(&mut out, 2, st);
    if p.alerts_total > p.alerts.len() as u64 {
        let _ = writeln!(out, "  … the newest {} shown (ruaflow alerts lists them all)", p.alerts.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_in_the_form_the_store_keeps() {
        assert_eq!(parse_ip(" 192.0.2.25 ").map(|ip| ip.to_string()), Ok("192.0.2.25".to_owned()));
        assert_eq!(parse_ip("[2001:DB8:0::25]").map(|ip| ip.to_string()), Ok("2001:db8::25".to_owned()));
        for bad in ["", "192.0.2", "192.0.2.256", "example.com", "192.0.2.0/24", "2001:db8:::1"] {
            let err = parse_ip(bad).expect_err(bad);
            assert!(err.contains("is not an IP address"), "{err}");
        }
    }
}
