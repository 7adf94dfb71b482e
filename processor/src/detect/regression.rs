//! `auth_regression`: a regular sender's DKIM or SPF pass rate drops — a broken or
//! rotated-away key, an SPF record that lost an include.
//!
//! Input: the [`Day`]'s regular senders (enough mail today and on other days). Output:
//! for each of `dkim` and `spf`, a firing alert listing the sources whose usual aligned
//! pass rate (every other day the model saw) was high and whose rate today fell by at
//! least `regression_drop`; or a quiet finding.

use ruaflow_schema::alert::{Alert, AlertKind, Severity};

use super::day::{Day, Regular, TOP};
use super::store::DayCounts;
use super::{percent, thousands, DetectConfig, Finding, Outcome};

pub(super) fn detect(config: &DetectConfig, day: &Day, out: &mut Outcome) {
    for method in [Method::Dkim, Method::Spf] {
        let mut dropped: Vec<(&Regular, f64, f64)> = day
            .regulars
            .iter()
            .filter_map(|r| {
                let usual = method.passed(&r.usual) as f64 / r.usual.messages as f64;
                let today = method.passed(&r.today) as f64 / r.today.messages as f64;
                (usual >= config.regression_usual_rate && usual - today >= config.regression_drop)
                    .then_some((r, usual, today))
            })
            .collect();
        if dropped.is_empty() {
            out.findings.push(Finding::Quiet(AlertKind::AuthRegression, method.name().to_owned()));
            continue;
        }
        dropped.sort_by_key(|d| std::cmp::Reverse(d.0.today.messages));
        let failing_of = |r: &Regular| r.today.messages - method.passed(&r.today);
        let affected: u64 = dropped.iter().map(|(r, _, _)| r.today.messages).sum();
        let failing: u64 = dropped.iter().map(|(r, _, _)| failing_of(r)).sum();
        let (top, usual, today) = dropped[0];
        let summary = format!(
            "Authentication regression for {} on {}: {} regular sending {} aligned {} passes dropped (top: {} \
             usually {}, now {}); {} of {} messages failed. {}.",
            day.domain,
            ruaflow_schema::time::format_date(day.day),
            dropped.len(),
            if dropped.len() == 1 { "source's" } else { "sources'" },
            method.name().to_uppercase(),
            top.source.ip,
            percent(usual),
            percent(today),
            thousands(failing),
            thousands(affected),
            method.advice(),
        );
        let mut alert = Alert::firing(AlertKind::AuthRegression, &day.domain, Severity::Warning, day.day);
        alert.observed = failing as f64;
        alert.baseline = ((1.0 - usual) * affected as f64).round();
        alert.sources = dropped
            .iter()
            .take(TOP)
            .map(|(r, _, _)| {
                let mut s = r.source.clone();
                s.messages = failing_of(r);
                s
            })
            .collect();
        alert.first_seen = day.first_seen;
        alert.summary = summary;
        alert.details.insert("method".into(), method.name().into());
        alert.details.insert("usual_rate".into(), usual.into());
        alert.details.insert("rate".into(), today.into());
        out.findings.push(Finding::Firing(Box::new(alert), method.name().to_owned()));
    }
}

#[derive(Clone, Copy)]
enum Method {
    Dkim,
    Spf,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Dkim => "dkim",
            Method::Spf => "spf",
        }
    }

    fn passed(self, counts: &DayCounts) -> u64 {
        match self {
            Method::Dkim => counts.dkim_aligned_pass,
            Method::Spf => counts.spf_aligned_pass,
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Method::Dkim => {
                "Check that the signing key matches the published selector record and that the signer is still running"
            }
            Method::Spf => "Check that the SPF record still includes these servers (and stays under 10 DNS lookups)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{day_with, regular};
    use super::*;
    use crate::normalize::DAY;

    #[test]
    fn a_sender_whose_dkim_broke_fires_for_dkim_only() {
        let config = DetectConfig::default();
        // 10,000 messages before, all DKIM- and SPF-aligned; today 1,000 with 100 DKIM passes.
        let broken = regular("192.0.2.1", (10_000, 10_000, 10_000), (1_000, 100, 1_000));
        let fine = regular("192.0.2.2", (10_000, 10_000, 10_000), (1_000, 990, 1_000));
        let day = day_with(&config, 70 * DAY, vec![broken, fine]);
        let mut out = Outcome::default();
        detect(&config, &day, &mut out);
        let Finding::Firing(alert, subject) = &out.findings[0] else { panic!("dkim did not fire") };
        assert_eq!(subject, "dkim");
        assert_eq!(alert.sources.len(), 1);
        assert_eq!(alert.sources[0].messages, 900);
        assert!(matches!(&out.findings[1], Finding::Quiet(_, s) if s == "spf"));
    }
}
