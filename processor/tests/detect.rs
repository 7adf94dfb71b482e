//! Detector tests on hand-built stores: the detectors that no synthetic scenario
//! exercises (auth regression, reporter silence), and notice bookkeeping when the days of
//! one episode arrive in any order.

use ruaflow_processor::detect::{evaluate, sweep, DeclaredSender, DetectConfig};
use ruaflow_processor::normalize::DAY;
use ruaflow_processor::pipeline::ReportWriter;
use ruaflow_processor::sender::Status;
use ruaflow_processor::sqlite::{self, Origin, SqliteStore};
use ruaflow_processor::store::Store;
use ruaflow_schema::alert::{AlertKind, AlertState};
use ruaflow_schema::dmarc::*;

/// 2026-09-01 00:00 UTC.
const START: i64 = 1_788_220_800;

struct Row {
    ip: &'static str,
    count: u64,
    dkim: bool,
    spf: bool,
}

fn row(ip: &'static str, count: u64, dkim: bool, spf: bool) -> Row {
    Row { ip, count, dkim, spf }
}

fn store_report(store: &mut SqliteStore, org: &str, domain: &str, day: i64, rows: &[Row]) {
    store.begin().expect("begin");
    write_report(store, org, domain, day, rows, &[]).expect("finish");
    store.commit(ruaflow_processor::barrier::Sealed::empty()).expect("commit");
}

/// Writes one report inside the open batch, finished with `warnings`.
fn write_report(
    store: &mut SqliteStore,
    org: &str,
    domain: &str,
    day: i64,
    rows: &[Row],
    warnings: &[String],
) -> Result<(), ruaflow_processor::store::StoreError> {
    let begin = START + day * DAY;
    let header = ReportHeader {
        schema: SchemaVersion::Rfc7489,
        version: None,
        metadata: ReportMetadata {
            org_name: org.into(),
            email: format!("dmarc@{org}"),
            report_id: format!("{org}-{domain}-{day}"),
            begin,
            end: begin + DAY - 1,
            ..ReportMetadata::default()
        },
        policy: PolicyPublished { domain: domain.into(), ..PolicyPublished::default() },
    };
    let origin = Origin {
        sha256: [day as u8; 32],
        source: ruaflow_schema::Source::Dir,
        origin: format!("{org}/{day}"),
        filename: None,
        received_at: begin + DAY,
        size: 0,
    };
    let key = ruaflow_schema::ReportKey {
        kind: ruaflow_schema::ReportKind::Dmarc,
        reporter: org.into(),
        report_id: header.metadata.report_id.clone(),
        domain: domain.into(),
        begin,
        end: begin + DAY - 1,
    };
    let facts = ruaflow_processor::store::ReportFacts::new(key, &origin, "");
    let mut report = ReportWriter::begin(store, &facts, &header).expect("begin report").expect("new report");
    for r in rows {
        let verdict = |pass: bool| Some(if pass { DmarcResult::Pass } else { DmarcResult::Fail });
        let record = Record {
            source_ip: r.ip.parse().expect("ip"),
            count: r.count,
            disposition: Disposition::None,
            dkim: verdict(r.dkim),
            spf: verdict(r.spf),
            reasons: vec![],
            header_from: domain.into(),
            envelope_from: Some(domain.into()),
            envelope_to: None,
            dkim_auth: vec![DkimAuth {
                domain: domain.into(),
                selector: Some("s1".into()),
                result: if r.dkim { DkimResult::Pass } else { DkimResult::Fail },
                human_result: None,
            }],
            spf_auth: vec![SpfAuth {
                domain: domain.into(),
                scope: None,
                result: if r.spf { SpfResult::Pass } else { SpfResult::Fail },
                human_result: None,
            }],
        };
        report.record(store, &record).expect("record");
    }
    report.finish(store, warnings).map(|_| ())
}

fn day(n: i64) -> (String, i64) {
    ("example.com".to_owned(), START + n * DAY)
}

/// The wall clock while day `n`'s reports arrive: the morning after.
fn now(n: i64) -> i64 {
    START + (n + 1) * DAY + 6 * 3600
}

#[test]
fn a_known_senders_dkim_failing_raises_auth_regression_once() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    for d in 0..12 {
        let dkim_ok = d < 10;
        store_report(&mut store, "google.com", "example.com", d, &[row("192.0.2.10", 1000, dkim_ok, true)]);
        let alerts = evaluate(&mut store.detect_state(), &config, &[day(d)], now(d)).expect("evaluate");
        let regressions: Vec<_> = alerts.iter().filter(|a| a.kind == AlertKind::AuthRegression).collect();
        if d < 10 {
            assert!(regressions.is_empty(), "day {d}: {regressions:?}");
        } else if d == 10 {
            assert_eq!(regressions.len(), 1, "day 10 raises it");
            let alert = regressions[0];
            assert_eq!(alert.details["method"], "dkim");
            assert_eq!(alert.sources[0].ip, "192.0.2.10");
            assert!(alert.summary.contains("DKIM"), "{}", alert.summary);
        } else {
            assert!(regressions.is_empty(), "day {d}: still open, not repeated");
        }
    }
    // DKIM works again: the open alert is resolved, once.
    store_report(&mut store, "google.com", "example.com", 12, &[row("192.0.2.10", 1000, true, true)]);
    let alerts = evaluate(&mut store.detect_state(), &config, &[day(12)], now(12)).expect("evaluate");
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::AuthRegression && a.state == AlertState::Resolved),
        "{alerts:?}"
    );
    assert!(
        evaluate(&mut store.detect_state(), &config, &[day(12)], now(12)).expect("evaluate").is_empty(),
        "evaluating again raises nothing"
    );
}

#[test]
fn a_daily_reporter_that_stops_raises_reporter_silence() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    for d in 0..18 {
        store_report(&mut store, "google.com", "example.com", d, &[row("192.0.2.10", 100, true, true)]);
        if d < 14 {
            store_report(&mut store, "Yahoo", "example.com", d, &[row("192.0.2.10", 50, true, true)]);
        }
    }
    let alerts = sweep(&mut store.detect_state(), &config, now(19)).expect("sweep");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::ReporterSilence);
    assert_eq!(alerts[0].reporters[0].org, "Yahoo");
    assert_eq!(alerts[0].window_start, START + 14 * DAY, "the first missing day");
    assert!(sweep(&mut store.detect_state(), &config, now(19)).expect("sweep").is_empty(), "not repeated");

    // Yahoo resumes: resolved.
    store_report(&mut store, "Yahoo", "example.com", 18, &[row("192.0.2.10", 50, true, true)]);
    store_report(&mut store, "google.com", "example.com", 18, &[row("192.0.2.10", 100, true, true)]);
    let alerts = sweep(&mut store.detect_state(), &config, now(19)).expect("sweep");
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::ReporterSilence && a.state == AlertState::Resolved),
        "{alerts:?}"
    );
}

/// A replay flood over three days whose reports arrive newest first still raises one
/// alert, and a configured known network is never counted as unknown.
#[test]
fn one_episode_one_alert_whatever_the_arrival_order() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    let normal = [row("192.0.2.10", 5000, true, true), row("192.0.2.11", 5000, true, true)];
    for d in 0..20 {
        store_report(&mut store, "google.com", "example.com", d, &normal);
        evaluate(&mut store.detect_state(), &config, &[day(d)], now(d)).expect("evaluate");
    }
    let flood_ips = ["198.51.100.1", "198.51.100.2", "203.0.113.3", "203.0.113.4"];
    let mut raised = Vec::new();
    for d in [22, 21, 20] {
        let mut rows: Vec<Row> = flood_ips.iter().map(|ip| row(ip, 40_000, true, false)).collect();
        rows.extend([row("192.0.2.10", 5000, true, true), row("192.0.2.11", 5000, true, true)]);
        store_report(&mut store, "google.com", "example.com", d, &rows);
        raised.extend(evaluate(&mut store.detect_state(), &config, &[day(d)], now(d)).expect("evaluate"));
    }
    let replays: Vec<_> = raised.iter().filter(|a| a.kind == AlertKind::DkimReplaySuspected).collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0].selectors[0].selector, "s1");
    assert_eq!(replays[0].sources.len(), 4);

    // The same traffic from a configured network is known, not a replay.
    let mut config = DetectConfig::default();
    config.senders.push(DeclaredSender {
        domain: "example.com".into(),
        networks: vec!["198.51.100.0/24".parse().expect("cidr")],
        services: vec![],
        note: "our relays".into(),
    });
    let mut store = SqliteStore::in_memory().expect("store");
    for d in 0..8 {
        let rows = [row("192.0.2.10", 5000, true, true), row("198.51.100.1", 40_000, true, false)];
        store_report(&mut store, "google.com", "example.com", d, &rows);
        let alerts = evaluate(&mut store.detect_state(), &config, &[day(d)], now(d)).expect("evaluate");
        assert!(alerts.iter().all(|a| a.kind != AlertKind::DkimReplaySuspected), "day {d}: {alerts:?}");
    }
}

/// An ESP that signs with the domain's key is a known sender only when the IP databases
/// name it (its network); a PTR name, which whoever runs the address chooses, or a
/// mailbox provider or cloud, is shown and never trusted.
#[test]
fn only_an_esp_named_by_its_network_is_a_known_service() {
    let mut store = SqliteStore::in_memory().expect("store");
    let rules = DetectConfig::default();
    store_report(&mut store, "google.com", "example.com", 0, &[row("192.0.2.77", 300, true, false)]);
    let status = |store: &SqliteStore, kind: &str, by: &str| {
        store
            .conn()
            .execute(
                "UPDATE sources SET service = 'SendGrid', service_kind = ?1, service_by = ?2 WHERE ip = '192.0.2.77'",
                [kind, by],
            )
            .expect("update");
        sqlite::sender_status(store.conn(), &rules, "example.com", "192.0.2.77", START).expect("status").0
    };
    assert_eq!(status(&store, "esp", "asn"), Status::Service);
    assert_eq!(status(&store, "esp", "as_domain"), Status::Service);
    assert_eq!(status(&store, "esp", "ptr"), Status::Unknown, "a PTR name is not proof");
    assert_eq!(status(&store, "mailbox_provider", "asn"), Status::Unknown, "anyone can send through Gmail");
    assert_eq!(status(&store, "hosting", "asn"), Status::Unknown, "anyone can rent a cloud machine");
}

/// The sender model's rows a batch changes are written once, at its commit; a report the
/// store refuses inside the batch (after its counts were folded in) leaves them as the
/// reports before it made them, and the rows it alone brought are gone.
#[test]
fn a_report_refused_inside_a_batch_leaves_the_sender_model_as_before_it() {
    let mut store = SqliteStore::in_memory().expect("store");
    // Longer values are refused ("string or blob too big"): the refused report's warning.
    store.conn().set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 5_000).expect("limit");
    store.begin().expect("begin");
    write_report(&mut store, "google.com", "example.com", 0, &[row("192.0.2.1", 10, true, true)], &[])
        .expect("kept");
    let refused = write_report(
        &mut store,
        "yahoo.com",
        "example.com",
        0,
        &[row("192.0.2.1", 1_000, true, true), row("198.51.100.2", 5, true, false)],
        &["x".repeat(6_000)],
    );
    assert!(refused.is_err(), "the store refuses the report at its end");
    write_report(&mut store, "outlook.com", "example.com", 1, &[row("192.0.2.1", 7, true, true)], &[])
        .expect("kept");
    store.commit(ruaflow_processor::barrier::Sealed::empty()).expect("commit");
    let model = |table: &str| -> Vec<(String, i64, i64)> {
        store
            .conn()
            .prepare(&format!("SELECT source, messages, days_seen FROM {table} ORDER BY source"))
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(model("senders"), [("192.0.2.1".to_owned(), 17, 2)]);
    assert_eq!(model("sender_networks"), [("192.0.2.0/24".to_owned(), 17, 2)]);
}

/// Enrichment names a service after the source was stored: the stored status follows once
/// the enriched sources are evaluated again, and only for a name the rule trusts.
#[test]
fn a_source_named_as_an_esp_after_it_was_stored_is_stored_as_a_service() {
    let mut store = SqliteStore::in_memory().expect("store");
    store_report(&mut store, "google.com", "example.com", 0, &[row("192.0.2.77", 300, true, false)]);
    let stored = |store: &SqliteStore| -> (String, String) {
        store
            .conn()
            .query_row("SELECT status, reason FROM senders WHERE source = '192.0.2.77'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("row")
    };
    assert_eq!(stored(&store).0, "unknown");
    let name = |store: &SqliteStore, by: &str| {
        store
            .conn()
            .execute(
                "UPDATE sources SET service = 'SendGrid', service_kind = 'esp', service_by = ?1 WHERE ip = '192.0.2.77'",
                [by],
            )
            .expect("update");
    };
    name(&store, "ptr");
    assert_eq!(store.refresh_statuses(sqlite::Refresh::NamedServices).expect("refresh"), 0);
    assert_eq!(stored(&store).0, "unknown", "a PTR name is not proof");
    name(&store, "asn");
    assert_eq!(store.refresh_statuses(sqlite::Refresh::NamedServices).expect("refresh"), 1);
    let (status, reason) = stored(&store);
    assert_eq!(status, "service");
    assert!(reason.starts_with("SendGrid"), "{reason}");
    assert_eq!(store.refresh_statuses(sqlite::Refresh::NamedServices).expect("refresh"), 0, "once");
}

/// The days of a replay flood and what happens after it, evaluated as they arrive.
fn flood(
    store: &mut SqliteStore,
    config: &DetectConfig,
    days: std::ops::Range<i64>,
    now_of: impl Fn(i64) -> i64,
) -> Vec<ruaflow_schema::alert::Alert> {
    let normal = [row("192.0.2.10", 5000, true, true), row("192.0.2.11", 5000, true, true)];
    let mut sent = Vec::new();
    for d in 0..days.end + 3 {
        let mut rows: Vec<Row> = normal.iter().map(|r| row(r.ip, r.count, r.dkim, r.spf)).collect();
        if days.contains(&d) {
            rows.extend(
                ["198.51.100.1", "198.51.100.2", "203.0.113.3"].map(|ip| row(ip, 40_000, true, false)),
            );
        }
        store_report(store, "google.com", "example.com", d, &rows);
        sent.extend(evaluate(&mut store.detect_state(), config, &[day(d)], now_of(d)).expect("evaluate"));
    }
    sent
}

fn replays(alerts: &[ruaflow_schema::alert::Alert]) -> Vec<&ruaflow_schema::alert::Alert> {
    alerts.iter().filter(|a| a.kind == AlertKind::DkimReplaySuspected).collect()
}

/// A three-day flood is one episode: one firing notice, updated with each day's figures,
/// and one resolved notice with the episode's own figures.
#[test]
fn an_episode_fires_once_and_resolves_with_its_own_figures() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    let sent = flood(&mut store, &config, 20..23, now);
    let sent = replays(&sent);
    assert_eq!(
        sent.iter().map(|a| a.state).collect::<Vec<_>>(),
        [AlertState::Firing, AlertState::Resolved],
        "{sent:?}"
    );
    let episode = sent[1].episode.as_ref().expect("the resolved notice carries its episode");
    assert_eq!((episode.first_day, episode.last_day), (START + 20 * DAY, START + 22 * DAY));
    assert_eq!(episode.days(), 3);
    assert!(episode.total >= episode.peak * 2.0, "{episode:?}");
    let stored: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM alerts WHERE kind = 'dkim_replay_suspected'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(stored, 2, "one firing row for the three days, one resolved");
}

/// An acknowledged episode sends nothing more: neither a new day nor its resolution.
#[test]
fn an_acknowledged_episode_is_not_notified_again() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    let normal = [row("192.0.2.10", 5000, true, true), row("192.0.2.11", 5000, true, true)];
    let mut sent = Vec::new();
    for d in 0..27 {
        let mut rows: Vec<Row> = normal.iter().map(|r| row(r.ip, r.count, r.dkim, r.spf)).collect();
        if (20..23).contains(&d) {
            rows.extend(
                ["198.51.100.1", "198.51.100.2", "203.0.113.3"].map(|ip| row(ip, 40_000, true, false)),
            );
        }
        store_report(&mut store, "google.com", "example.com", d, &rows);
        let now = evaluate(&mut store.detect_state(), &config, &[day(d)], now(d)).expect("evaluate");
        if d == 20 {
            assert_eq!(replays(&now).len(), 1, "the flood's first day fires");
            store
                .conn()
                .execute("UPDATE alerts SET acknowledged_at = 1 WHERE kind = 'dkim_replay_suspected'", [])
                .expect("ack");
        } else {
            sent.extend(now);
        }
    }
    assert!(replays(&sent).is_empty(), "{sent:?}");
    let resolved: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM alerts WHERE kind = 'dkim_replay_suspected' AND state = 'resolved'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(resolved, 1, "the resolution is stored, not sent");
}

/// A backfill (reports evaluated long after their day) learns and stores its alerts as
/// historical, and sends nothing.
#[test]
fn a_backfill_stores_historical_alerts_and_sends_nothing() {
    let mut store = SqliteStore::in_memory().expect("store");
    let config = DetectConfig::default();
    let months_later = |_d: i64| START + 120 * DAY;
    let mut sent = flood(&mut store, &config, 20..22, months_later);
    // Another reporter's report of the flood's first day: the day is evaluated again.
    let more = ["198.51.100.1", "198.51.100.2", "203.0.113.3"].map(|ip| row(ip, 90_000, true, false));
    store_report(&mut store, "Yahoo", "example.com", 20, &more);
    sent.extend(
        evaluate(&mut store.detect_state(), &config, &[day(20)], months_later(20)).expect("evaluate"),
    );
    assert!(replays(&sent).is_empty(), "{sent:?}");
    let (historical, summary): (bool, String) = store
        .conn()
        .query_row(
            "SELECT historical, summary FROM alerts WHERE kind = 'dkim_replay_suspected' AND state = 'firing'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the alert is stored");
    assert!(historical);
    assert!(summary.starts_with("Historical"), "{summary}");
}
