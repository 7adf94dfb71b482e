//! `labels.json`: the ground truth of a generated data set, for scoring detectors.
//!
//! Positive events have `kind` `dkim_replay`, `spoofing_spike` or `tls_failure` and name the
//! alert a detector should raise (`alert`); hard negatives have `kind: "negative"`, say
//! which (`negative`), and list the alerts that must not fire (`must_not_alert`). Days are
//! unix seconds of a report day's start (00:00 UTC); `last_day` is inclusive. A replay
//! event's `first_arrival_day` is the day its first report reached the mailbox; where
//! reporters deliver late or in other windows than a UTC day, `delivery` says how each
//! one does, and the files sit in one directory per arrival day.

use serde_json::{json, Value};

use super::calendar::{day_start, DAY_SECS, FIRST_DAY};
use super::delivery::{Delivery, Window};
use super::scenario::{Plan, Scenario, FORWARDED_SHARE, LIST_GROWTH_END, TLS_OUTAGE_FAILURE_SHARE};
use super::traffic::{Class, Tally};
use super::world::World;
use super::SynthOptions;

/// Alerts that no hard negative may raise.
const MUST_NOT_ALERT: [&str; 3] = ["dkim_replay_suspected", "spoofing_spike", "auth_regression"];

/// Builds the labels document.
pub fn labels(opts: &SynthOptions, world: &World, plan: &Plan, tally: &Tally) -> Value {
    let domains: Vec<Value> = world
        .domains
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "p": d.p.as_str(),
                "selector": d.selector,
                "normal_weekday_messages": d.normal_volume(world.spoof_count_mean()).round(),
                "tlsrpt": d.tls.is_some(),
            })
        })
        .collect();
    let reporters: Vec<&str> = world.reporters.iter().map(|r| r.org_name.as_str()).collect();
    let delivery: serde_json::Map<String, Value> = world
        .reporters
        .iter()
        .map(|rep| (rep.org_name.clone(), Delivery::of(opts.scenario, rep.style)))
        .filter(|(_, d)| *d != Delivery::of(Scenario::Baseline, super::world::Style::Generic))
        .map(|(org, d)| {
            let window = match d.window {
                Window::Day => "day".to_owned(),
                Window::Hour => "hour".to_owned(),
                Window::Days(n) => format!("{n} days"),
            };
            (org, json!({ "window": window, "late_days": d.late_days }))
        })
        .collect();
    let mut doc = json!({
        "generator": "ruaflow synth",
        "scenario": opts.scenario.name(),
        "hard_negative": opts.scenario.is_negative(),
        "seed": opts.seed,
        "days": opts.days,
        "scale": opts.scale,
        "first_day": FIRST_DAY,
        "last_day": day_start(opts.days.saturating_sub(1)),
        "domains": domains,
        "reporters": reporters,
        "events": events(world, plan, tally),
    });
    if !delivery.is_empty() {
        doc["delivery"] = Value::Object(delivery);
        doc["reports_by_arrival_day"] = json!(true);
    }
    doc
}

fn events(world: &World, plan: &Plan, tally: &Tally) -> Vec<Value> {
    let Some((first, last)) = plan.event_days() else {
        return Vec::new();
    };
    let d = plan.target;
    let dom = &world.domains[d];
    let base = |kind: &str| {
        json!({
            "kind": kind,
            "domain": dom.name,
            "first_day": day_start(first),
            "last_day": day_start(last),
        })
    };
    let negative = |which: &str, extra: Value| {
        let mut v = base("negative");
        v["negative"] = json!(which);
        v["must_not_alert"] = json!(MUST_NOT_ALERT);
        merge(&mut v, extra);
        v
    };
    let daily = |class: Class| -> Vec<Value> {
        (first..=last)
            .map(|day| {
                json!({
                    "day": day_start(day),
                    "messages": tally.class(d, day, class),
                    "domain_total": tally.total(d, day),
                })
            })
            .collect()
    };
    let event = match plan.scenario {
        Scenario::Baseline => return Vec::new(),
        Scenario::ReplayFlood
        | Scenario::SlowRampReplay
        | Scenario::OldSelectorReplay
        | Scenario::LateReports
        | Scenario::ReplaySize(_) => {
            let networks: Vec<String> =
                world.botnet_networks.iter().map(|n| format!("100.{n}.0.0/16")).collect();
            // Replayed messages per reporter over the whole event.
            let by_reporter: serde_json::Map<String, Value> = world
                .reporters
                .iter()
                .enumerate()
                .map(|(r, rep)| {
                    let n: u64 = (first..=last).map(|day| tally.replay_at_reporter(d, day, r)).sum();
                    (rep.org_name.clone(), json!(n))
                })
                .filter(|(_, n)| n.as_u64() != Some(0))
                .collect();
            let top = by_reporter.iter().max_by_key(|(_, n)| n.as_u64()).map(|(org, _)| org.clone());
            // The first report holding replayed mail to reach the mailbox.
            let first_arrival = world
                .reporters
                .iter()
                .enumerate()
                .flat_map(|(r, rep)| {
                    let delivery = Delivery::of(plan.scenario, rep.style);
                    (first..=last)
                        .filter(move |&day| tally.replay_at_reporter(d, day, r) > 0)
                        .map(move |day| delivery.first_arrival(r, day, plan.days))
                })
                .min()
                .map(|t| t - t % DAY_SECS);
            let mut v = base("dkim_replay");
            merge(
                &mut v,
                json!({
                    "alert": "dkim_replay_suspected",
                    "dkim_domain": dom.name,
                    "selector": dom.selector,
                    "reporter": top,
                    "reporters": world.reporters.iter().filter(|r| r.flood_share > 0.0)
                        .map(|r| r.org_name.as_str()).collect::<Vec<_>>(),
                    "source_ips": world.botnet.len(),
                    "networks": networks,
                    "multipliers": plan.replay_schedule(),
                    "size": plan.peak_replay_multiplier(),
                    "daily": daily(Class::Replay),
                    "by_reporter": by_reporter,
                    "first_arrival_day": first_arrival,
                }),
            );
            if let Some(rotated) = plan.rotation_day() {
                v["rotation_day"] = json!(day_start(rotated));
                v["new_selector"] = json!(dom.rotated_selector);
            }
            v
        }
        Scenario::SpoofingSpike => {
            let mut v = base("spoofing_spike");
            merge(
                &mut v,
                json!({
                    "alert": "spoofing_spike",
                    "multipliers": plan.spike_schedule(),
                    "daily": daily(Class::Spoof),
                }),
            );
            v
        }
        Scenario::TlsFailure => {
            let mx = dom.tls.as_ref().and_then(|t| t.mx.last()).map(|(host, _)| host.as_str());
            let mut v = base("tls_failure");
            merge(
                &mut v,
                json!({
                    "alert": "tls_failure_spike",
                    "result_type": "certificate-expired",
                    "mx_host": mx,
                    "failure_share": TLS_OUTAGE_FAILURE_SHARE,
                    "reporters": world.tls_reporters.iter().map(|t| t.organization).collect::<Vec<_>>(),
                    "daily": (first..=last).map(|day| {
                        let (sessions, failed) = tally.tls(d, day);
                        json!({ "day": day_start(day), "sessions": sessions, "failed_sessions": failed })
                    }).collect::<Vec<_>>(),
                }),
            );
            v
        }
        Scenario::NewEsp => {
            let ips: Vec<String> = world.new_esp.ips.iter().map(|s| s.ip.to_string()).collect();
            negative(
                "new_esp",
                json!({
                    "esp_domain": world.new_esp.domain,
                    "selector": world.new_esp.customer_selector,
                    "source_ips": ips,
                    "may_alert": ["new_authenticated_source"],
                    "daily": daily(Class::NewEsp),
                }),
            )
        }
        Scenario::MailingListGrowth => {
            let lists: Vec<&str> = dom.lists.iter().map(|&(i, _)| world.lists[i].domain).collect();
            negative(
                "mailing_list_growth",
                json!({ "growth": LIST_GROWTH_END, "list_domains": lists, "daily": daily(Class::List) }),
            )
        }
        Scenario::DkimRotation => negative(
            "dkim_rotation",
            json!({ "old_selector": dom.selector, "new_selector": dom.rotated_selector }),
        ),
        Scenario::EspDkimOnly => {
            let esp = &world.signer_esp;
            let ips: Vec<String> = esp.ips.iter().map(|s| s.ip.to_string()).collect();
            negative(
                "esp_dkim_only",
                json!({
                    "esp_domain": esp.domain,
                    "selector": esp.customer_selector,
                    "source_ips": ips,
                    "may_alert": ["new_authenticated_source"],
                    "daily": daily(Class::NewEsp),
                }),
            )
        }
        Scenario::ChurningForwarders => negative(
            "churning_forwarders",
            json!({
                "share": [FORWARDED_SHARE.0, FORWARDED_SHARE.1],
                "old_selector": dom.selector,
                "new_selector": dom.rotated_selector,
                "rotation_day": plan.rotation_day().map(day_start),
                "daily": daily(Class::Forwarded),
            }),
        ),
        Scenario::ReporterJoining => {
            let Some(r) = world.joining_reporter else {
                return Vec::new();
            };
            // The new reporter covers every domain: one entry per domain.
            return world
                .domains
                .iter()
                .enumerate()
                .map(|(d, dom)| {
                    let extra = json!({
                        "reporter": world.reporters[r].org_name,
                        "messages_first_day": tally.at_reporter(d, first, r),
                    });
                    let mut v = negative("reporter_joining", extra);
                    v["domain"] = json!(dom.name);
                    v
                })
                .collect();
        }
    };
    vec![event]
}

/// Copies `extra`'s fields into the object `v`.
fn merge(v: &mut Value, extra: Value) {
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
}
