#!/usr/bin/env python3
"""Evaluate the detectors on labelled synthetic scenarios.

    tests/detection_eval.py --ruaflow target/debug/ruaflow [--seeds 1,2] [--scenarios a,b]
                            [--markdown OUT.md] [--workdir DIR]

For every scenario and seed: `ruaflow synth` writes reports and labels.json, `ruaflow run
--once --offline` stores them (detection runs as each batch commits), and `ruaflow alerts
--json` lists what was raised. Where the reports sit in one directory per arrival day
(labels say `reports_by_arrival_day`: late reporters, hourly and multi-day windows), each
day's directory is fed with its own `run --once`, in order, so detection sees only what
had arrived. Each firing alert is matched against the labels:

- a positive event (dkim_replay, spoofing_spike, tls_failure) is detected by an alert of
  its kind for its domain whose day lies in the event; its detection delay is the first
  such day minus the event's first day — or, where reports arrive by day, the arrival day
  whose run first raised it minus the day the event's first report arrived;
- an alert that matches no positive event is a false positive, unless a hard negative
  says the alert may happen (a new ESP may raise new_authenticated_source).

It checks, and exits 1 when any fails:
- every positive event is detected on its first day, except replay floods smaller than
  the domain's normal volume (reported, not failed);
- every replay alert names the replayed selector first and top sources from the flood's
  networks;
- no dkim_replay_suspected alert in the baseline or any hard negative;
- no false positives of the warning/critical detectors.

Standard library only.
"""

import argparse
import calendar
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

DAY = 86400
SIZES = ["replay-size-0.5", "replay-size-1", "replay-size-2", "replay-size-5", "replay-size-50"]
SCENARIOS = ["baseline", "replay-flood", "slow-ramp-replay", "spoofing-spike", "tls-failure",
             "new-esp", "mailing-list-growth", "dkim-rotation", "reporter-joining",
             "esp-dkim-only", "churning-forwarders", "old-selector-replay", "late-reports"] + SIZES
# Replay floods below this many times the domain's normal volume may be missed.
MUST_DETECT_SIZE = 1.0
DETECTORS = ["dkim_replay_suspected", "new_authenticated_source", "spoofing_spike", "auth_regression",
             "tls_failure_spike", "reporter_silence"]
# Informational detectors: their alerts are reported, but a surprise one fails nothing.
INFORMATIONAL = {"new_authenticated_source"}


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"command failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return out.stdout


def alerts_in(binary, db):
    out = run([binary, "alerts", "--db", db, "--json"])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def evaluate(binary, scenario, seed, workdir):
    """Firing alerts of one run, each with `arrived`: the arrival day (unix seconds) of the
    batch whose run first raised it, or None when everything was fed at once."""
    data = os.path.join(workdir, f"{scenario}-{seed}")
    db = data + ".db"
    if os.path.exists(db):
        os.remove(db)
    run([binary, "synth", "--out", data, "--seed", str(seed), "--scenario", scenario])
    with open(os.path.join(data, "labels.json")) as f:
        labels = json.load(f)
    reports = os.path.join(data, "reports")
    arrived = {}
    if labels.get("reports_by_arrival_day"):
        for name in sorted(os.listdir(reports)):
            day = int(calendar.timegm(time.strptime(name, "%Y-%m-%d")))
            run([binary, "run", "--once", "--offline", "--db", db, os.path.join(reports, name)])
            for a in alerts_in(binary, db):
                arrived.setdefault(a["id"], day)
    else:
        run([binary, "run", "--once", "--offline", "--db", db, reports])
    alerts = [a for a in alerts_in(binary, db) if a["state"] == "firing"]
    for a in alerts:
        a["arrived"] = arrived.get(a["id"])
    return labels, alerts


def in_event(alert, event):
    return alert["domain"] == event["domain"] and event["first_day"] <= alert["window_start"] <= event["last_day"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ruaflow", required=True)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--markdown")
    ap.add_argument("--workdir")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 2),
                    help="scenario runs at a time (each is a separate store)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    scenarios = args.scenarios.split(",")
    workdir = args.workdir or tempfile.mkdtemp(prefix="ruaflow-eval-")

    stats = {d: defaultdict(int) for d in DETECTORS}
    delays = defaultdict(list)
    sizes = defaultdict(list)
    failures = []
    rows = []
    runs = [(scenario, seed) for scenario in scenarios for seed in seeds]
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = list(pool.map(lambda r: evaluate(args.ruaflow, r[0], r[1], workdir), runs))
    for (scenario, seed), (labels, alerts) in zip(runs, results):
        positives = [e for e in labels["events"] if e["kind"] != "negative"]
        negatives = [e for e in labels["events"] if e["kind"] == "negative"]
        kinds = sorted({a["kind"] for a in alerts})
        rows.append((scenario, seed, len(alerts), ", ".join(f"{k} x{sum(a['kind'] == k for a in alerts)}" for k in kinds) or "none"))
        for event in positives:
            kind = event["alert"]
            stats[kind]["events"] += 1
            hits = [a for a in alerts if a["kind"] == kind and in_event(a, event)]
            if not hits:
                if scenario in SIZES:
                    sizes[event["size"]].append(None)
                if event.get("size", MUST_DETECT_SIZE) >= MUST_DETECT_SIZE:
                    failures.append(f"{scenario} seed {seed}: {kind} for {event['domain']} not detected")
                continue
            stats[kind]["detected"] += 1
            if event.get("first_arrival_day") is not None and all(a["arrived"] is not None for a in hits):
                delay = (min(a["arrived"] for a in hits) - event["first_arrival_day"]) // DAY
            else:
                delay = (min(a["window_start"] for a in hits) - event["first_day"]) // DAY
            delays[kind].append(delay)
            if scenario in SIZES:
                sizes[event["size"]].append(delay)
            if delay != 0:
                failures.append(f"{scenario} seed {seed}: {kind} detected on day {delay} of the event, not its first")
            if kind == "dkim_replay_suspected":
                first = min(hits, key=lambda a: a["window_start"])
                selector = (first.get("selectors") or [{}])[0].get("selector")
                if selector != event["selector"]:
                    failures.append(f"{scenario} seed {seed}: replay alert names selector {selector!r}, not {event['selector']!r}")
                networks = [ipaddress.ip_network(n) for n in event.get("networks", [])]
                stray = [s["ip"] for s in first["sources"] if not any(ipaddress.ip_address(s["ip"]) in n for n in networks)]
                if not first["sources"] or stray:
                    failures.append(f"{scenario} seed {seed}: replay alert top sources outside the flood: {stray or 'none named'}")
        for alert in alerts:
            kind = alert["kind"]
            stats[kind]["alerts"] += 1
            if any(alert["kind"] == e.get("alert") and in_event(alert, e) for e in positives):
                stats[kind]["true"] += 1
            elif any(kind in e.get("may_alert", []) and in_event(alert, e) for e in negatives):
                stats[kind]["allowed"] += 1
            else:
                stats[kind]["false"] += 1
                if kind == "dkim_replay_suspected" or kind not in INFORMATIONAL:
                    failures.append(f"{scenario} seed {seed}: unexpected {kind} for {alert['domain']} on "
                                    f"day {(alert['window_start'] - labels['first_day']) // DAY}: {alert['summary'][:120]}")

    lines = ["| detector | events | detected (recall) | first-day detections | alerts | true | allowed by a negative | false | precision |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in DETECTORS:
        s = stats[kind]
        recall = f"{s['detected']}/{s['events']} ({s['detected'] / s['events']:.0%})" if s["events"] else "n/a"
        judged = s["true"] + s["false"]
        precision = f"{s['true'] / judged:.0%}" if judged else "n/a"
        first_day = f"{sum(d == 0 for d in delays[kind])}/{len(delays[kind])}" if delays[kind] else "n/a"
        lines.append(f"| {kind} | {s['events']} | {recall} | {first_day} | {s['alerts']} | {s['true']} | {s['allowed']} | {s['false']} | {precision} |")
    table = "\n".join(lines)
    runs = ["| scenario | seed | firing alerts | by kind |", "|---|---|---|---|"]
    runs += [f"| {sc} | {seed} | {n} | {kinds} |" for sc, seed, n, kinds in rows]
    by_size = ["| replay flood size (x normal volume) | floods | detected (recall) | first-day detections | detection day |",
               "|---|---|---|---|---|"]
    for size in sorted(sizes):
        got = sizes[size]
        found = [d for d in got if d is not None]
        when = ", ".join("missed" if d is None else f"day {d}" for d in got)
        by_size.append(f"| {size:g}x | {len(got)} | {len(found)}/{len(got)} ({len(found) / len(got):.0%}) | "
                       f"{sum(d == 0 for d in found)}/{len(got)} | {when} |")
    report = table + "\n\n" + "\n".join(runs)
    if sizes:
        report = table + "\n\n" + "\n".join(by_size) + "\n\n" + "\n".join(runs)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nall checks passed ({len(scenarios)} scenarios x {len(seeds)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
