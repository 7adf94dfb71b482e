//! Detection state in the SQLite file: the [`DetectStore`] the embedded detectors use.

use rusqlite::{params, Connection, OptionalExtension};

use ruaflow_schema::alert::{Alert, AlertKind, AlertSource, AlertState};
use ruaflow_schema::clock::now;

use super::senders::{sender_from_row, SENDER_COLUMNS};
use crate::detect::store::{
    DayCounts, DaySource, DetectStore, ReporterActivity, Signal, StoredNotice, StoredSignal, TlsDay,
    TlsFailure,
};
use crate::sender::TRUSTED_SERVICE;

/// The detection state of one SQLite file, borrowed from its store for one evaluation.
pub struct SqliteDetect<'a> {
    pub(super) conn: &'a Connection,
}

impl super::SqliteStore {
    /// The detection state, for [`crate::detect::evaluate`] and [`crate::detect::sweep`].
    pub fn detect_state(&mut self) -> SqliteDetect<'_> {
        SqliteDetect { conn: &self.conn }
    }
}

impl DetectStore for SqliteDetect<'_> {
    type Error = rusqlite::Error;

    fn day_sources(
        &mut self,
        domain: &str,
        day: i64,
        visit: &mut dyn FnMut(DaySource),
    ) -> Result<(), Self::Error> {
        let columns: String =
            SENDER_COLUMNS.split(',').map(|c| format!("s.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let trusted = TRUSTED_SERVICE.replace("service", "src.service");
        let sql = format!(
            "SELECT a.source_ip, a.network, a.reporter, a.messages, a.dmarc_pass, a.dkim_aligned_pass,
                    a.spf_aligned_pass, a.dkim_only_pass, a.disp_quarantine + a.disp_reject,
                    n.first_day, src.service, s.domain IS NOT NULL, {trusted} IS NOT NULL, {columns}
             FROM agg_source_day a
             LEFT JOIN senders s ON s.domain = a.domain AND s.source = a.source_ip
             LEFT JOIN sender_networks n ON n.domain = a.domain AND n.source = a.network
             LEFT JOIN sources src ON src.ip = a.source_ip
             WHERE a.domain = ?1 AND a.day = ?2
             ORDER BY a.network, a.source_ip"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![domain, day])?;
        let mut current: Option<DaySource> = None;
        while let Some(r) = rows.next()? {
            let ip: String = r.get(0)?;
            let counts = DayCounts {
                messages: r.get(3)?,
                dmarc_pass: r.get(4)?,
                dkim_aligned_pass: r.get(5)?,
                spf_aligned_pass: r.get(6)?,
                dkim_only_pass: r.get(7)?,
                blocked: r.get(8)?,
            };
            let reporter: String = r.get(2)?;
            if let Some(source) = current.as_mut().filter(|s| s.ip == ip) {
                source.reporters.push((reporter, counts));
                continue;
            }
            if let Some(done) = current.take() {
                visit(done);
            }
            let has_sender: bool = r.get(11)?;
            current = Some(DaySource {
                ip,
                network: r.get(1)?,
                reporters: vec![(reporter, counts)],
                sender: if has_sender { Some(sender_from_row(r, 13)?) } else { None },
                network_first_day: r.get(9)?,
                service: r.get(10)?,
                service_trusted: r.get(12)?,
            });
        }
        if let Some(done) = current {
            visit(done);
        }
        Ok(())
    }

    fn first_report(&mut self, domain: &str, day: i64) -> Result<Option<i64>, Self::Error> {
        self.conn
            .prepare_cached("SELECT MIN(begin_ts) FROM reports WHERE domain = ?1 AND day = ?2")?
            .query_row(params![domain, day], |r| r.get(0))
    }

    fn tls_day(&mut self, domain: &str, day: i64) -> Result<TlsDay, Self::Error> {
        let (sessions, first_seen): (u64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(p.successful_sessions + p.failed_sessions), 0), MIN(r.begin_ts)
                 FROM tlsrpt_policies p JOIN reports r ON p.report = r.id WHERE p.policy_domain = ?1 AND r.day = ?2",
            )?
            .query_row(params![domain, day], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if sessions == 0 {
            return Ok(TlsDay::default());
        }
        let failures = self
            .conn
            .prepare_cached(
                "SELECT f.result_type, COALESCE(f.receiving_mx_hostname, ''), r.org_name, SUM(f.failed_sessions)
                 FROM tlsrpt_failures f JOIN reports r ON f.report = r.id
                 WHERE f.policy_domain = ?1 AND r.day = ?2
                 GROUP BY f.result_type, f.receiving_mx_hostname, r.org_name",
            )?
            .query_map(params![domain, day], |r| {
                Ok(TlsFailure { result_type: r.get(0)?, mx: r.get(1)?, reporter: r.get(2)?, sessions: r.get(3)? })
            })?
            .collect::<Result<_, _>>()?;
        Ok(TlsDay { sessions, failures, first_seen })
    }

    fn signals(&mut self, domain: &str, from: i64, to: i64) -> Result<Vec<StoredSignal>, Self::Error> {
        self.conn
            .prepare_cached(
                "SELECT signal, subject, day, value FROM detector_signals WHERE domain = ?1 AND day >= ?2 AND day < ?3",
            )?
            .query_map(params![domain, from, to], |r| {
                Ok(StoredSignal { signal: r.get(0)?, subject: r.get(1)?, day: r.get(2)?, value: r.get(3)? })
            })?
            .collect()
    }

    fn record_signals(&mut self, domain: &str, signals: &[Signal]) -> Result<(), Self::Error> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO detector_signals (domain, signal, subject, day, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (domain, signal, subject, day) DO UPDATE SET value = excluded.value",
        )?;
        for s in signals {
            stmt.execute(params![domain, s.signal, s.subject, s.day, s.value])?;
        }
        Ok(())
    }

    fn enrich_sources(&mut self, sources: &mut [AlertSource]) -> Result<(), Self::Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ptr, asn, as_org, country, service FROM sources WHERE ip = ?1")?;
        for source in sources {
            let known = stmt
                .query_row([&source.ip], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .optional()?;
            if let Some((ptr, asn, as_org, country, service)) = known {
                let service: Option<String> = service;
                (source.ptr, source.asn, source.as_org, source.country) = (ptr, asn, as_org, country);
                source.service = service.or(source.service.take());
            }
        }
        Ok(())
    }

    fn reporter_activity(&mut self, regular_window: i64) -> Result<Vec<ReporterActivity>, Self::Error> {
        self.conn
            .prepare_cached(
                "WITH latest AS (SELECT domain, MAX(day) AS max_day FROM reports WHERE kind = 'dmarc' GROUP BY domain),
                      last AS (SELECT domain, org_name, MAX(day) AS last_day FROM reports WHERE kind = 'dmarc'
                               GROUP BY domain, org_name)
                 SELECT last.domain, last.org_name, last.last_day, latest.max_day,
                        (SELECT COUNT(DISTINCT r.day) FROM reports r
                         WHERE r.kind = 'dmarc' AND r.domain = last.domain AND r.org_name = last.org_name
                           AND r.day > last.last_day - ?1 AND r.day <= last.last_day)
                 FROM last JOIN latest USING (domain)",
            )?
            .query_map([regular_window], |r| {
                Ok(ReporterActivity {
                    domain: r.get(0)?,
                    reporter: r.get(1)?,
                    last_day: r.get(2)?,
                    latest_day: r.get(3)?,
                    recent_days: r.get(4)?,
                })
            })?
            .collect()
    }

    fn notices(
        &mut self,
        kind: AlertKind,
        domain: &str,
        subject: &str,
    ) -> Result<Vec<StoredNotice>, Self::Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, window_start, state, body, acknowledged_at IS NOT NULL
             FROM alerts WHERE kind = ?1 AND domain = ?2 AND subject = ?3",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), domain, subject], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, day, state, body, acknowledged) = row?;
            // A body this version cannot read (written by a newer one) is skipped, not fatal.
            let Ok(alert) = serde_json::from_str::<Alert>(&body) else { continue };
            out.push(StoredNotice { id, day, firing: state == "firing", alert, acknowledged });
        }
        Ok(out)
    }

    fn insert_notice(&mut self, alert: &Alert, subject: &str) -> Result<bool, Self::Error> {
        let state = match alert.state {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        let body = serde_json::to_string(alert).unwrap_or_default();
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO alerts (kind, domain, subject, severity, window_start, window_end, observed,
                    baseline, first_seen, raised_at, state, summary, body, historical)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                body,
                alert.historical,
            ])?;
        Ok(n == 1)
    }

    fn update_notice(&mut self, id: i64, alert: &Alert) -> Result<(), Self::Error> {
        let body = serde_json::to_string(alert).unwrap_or_default();
        self.conn
            .prepare_cached(
                "UPDATE alerts SET observed = ?2, baseline = ?3, summary = ?4, body = ?5, severity = ?6 WHERE id = ?1",
            )?
            .execute(params![id, alert.observed, alert.baseline, alert.summary, body, alert.severity.as_str()])?;
        Ok(())
    }
}
