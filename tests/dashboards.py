#!/usr/bin/env python3
"""Every Grafana panel of dashboards/ runs against real data, on ClickHouse 18.16 and on current ClickHouse.

    tests/dashboards.py --ruaflow target/debug/ruaflow [--workdir DIR] [--keep] [--no-chdb]

Needs RUAFLOW_TEST_KAFKA and RUAFLOW_TEST_CLICKHOUSE (tests/services/up); without them it
is skipped, except with CI=true, where anything missing (services, the chdb-core venv,
Prometheus) is a failure.

1. Schema of the provisioning and the dashboard JSON: unique dashboard uids and panel ids,
   every panel, target, variable and annotation on a provisioned data source (same uid and
   type), SQL targets in the SQL editor with a table or time-series format, and the rules
   for ClickHouse SQL: every table read with FINAL (all tables are ReplacingMergeTree),
   never the DKIM/SPF auth arrays (no cross products), no trailing semicolon.
2. A synthetic month with a DKIM replay flood (`ruaflow synth --scenario replay-flood`),
   plus one input that is no report (a dead letter) and ARF failure reports written here
   (from the flood's networks, from a source SPF authorizes, for a second domain, one
   of them twice with other line ends), goes through the real distributed
   pipeline: `ruaflow migrate` into a database of its own; `ruaflow process` (own group)
   and `ruaflow ingest http` (the compose stack's config) run, watched by Prometheus
   (Debian's), while `ruaflow ingest dir --once` publishes to a topic of its own, until
   ClickHouse holds what the embedded pipeline (`ruaflow run --once --offline`) stores
   from the same files; then a TLS report already stored is POSTed again to the HTTP
   source and an unauthenticated request is refused, so the HTTP and duplicate metrics
   exist; both processes stop on SIGTERM and must exit 0.
3. Every SQL target, variable query and annotation is expanded the way Grafana and the
   ClickHouse plugin (v4) do it: first the plugin's frontend `$__conditionalAll(cond, $var)`
   (`1=1` when the variable is All), then Grafana's template variables with the plugin's
   format (`${var:singlequote}`; a multi-value without format becomes 'a','b'), then the
   backend macros (`$__timeFilter`, `$__dateFilter`, `$__fromTime`, `$__toTime`,
   `$__interval_s`, `$__timeInterval`, ...) exactly as grafana/clickhouse-datasource's
   pkg/macros renders them. Each runs with every variable at All, with one and two real
   values of each variable, and with a dependent pair (a domain and one of its
   reporters); queries that use `$__interval_s` also run at a weekly interval. The time
   range is the report days of the data (the Pipeline dashboard: the minutes of the load,
   by time stored). Each must
   succeed and return rows with data, on the test ClickHouse (18.16, over HTTP) and on
   current ClickHouse (chdb-core, in-process, same schema, the tables copied over).
   Allowed to return nothing in this first pass: targets that read only `sources` and
   `source_services`, which the detector group's enrichment fills beside detection
   (from dnsmasq answering a PTR name per address, and an IP database in IPinfo Lite's
   layout written for the data set's networks). `senders`, `alerts` and `detector_signals` are
   the detector group's: a `ruaflow detect` runs beside the processor and must have read
   every report's digest.
4. Cross-checks on both engines: the Overview volume equals the messages of the reports
   at a daily and a weekly interval (nothing counted twice, no cross product); the replay
   signal panel (the detector group's detector_signals) equals, day by day and domain by
   domain, the value the embedded pipeline's replay detector stored; the Sources table shows
   the status the detector group wrote into `senders` for every source, `unknown` for the
   replay flood's addresses and a known status for some of the domain's own senders; the
   source status split and the
   TLS totals add up; no TLS by MX row shows a zero share for failed sessions; the
   failure reports and those from unknown sources are as many as the embedded store and
   its sender status (`ruaflow failures`) say, and no local part shows.
5. Second pass, once the detector group has enriched every source (PTR names of ESPs,
   which are shown and never trusted; documentation ASNs 64496-64511; a country) and an
   operator acknowledged the replay alert (`ruaflow alerts ack`): every target that reads
   the enrichment or the alerts runs again and must return data, the sources joins must
   carry the PTR, AS and service, the Alerts table the acknowledgement.
6. Prometheus panels (Pipeline dashboard): every metric name exists in the /metrics of the
   running processes or is registered in the source (a typo fails), and every PromQL
   expression runs on a real Prometheus (Debian's, installed with apt when missing) that
   scraped them during the load, with the compose stack's job names (query_range), with
   data unless all its metrics are absent from /metrics (insert failures: none happened).

Standard library only; chdb-core runs in a venv of its own,
${RUAFLOW_CACHE:-~/.cache/ruaflow}/venv-dashboards, created when missing.
"""

import argparse
import datetime
import email.utils
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD_DIR = os.path.join(ROOT, "dashboards", "grafana", "dashboards")
PROVISIONING_DIR = os.path.join(ROOT, "dashboards", "grafana", "provisioning")
COMPOSE_DIR = os.path.join(ROOT, "dashboards", "compose")
SCHEMA_DIR = os.path.join(ROOT, "schema", "sql", "clickhouse")
# Not a migration: the retention TTLs, applied with the ages of a config (see ttl_checks).
RETENTION_TTL = os.path.join(SCHEMA_DIR, "0004_retention_ttl.sql")
CI = os.environ.get("CI") == "true"
VENV = os.path.join(os.environ.get("RUAFLOW_CACHE") or os.path.expanduser("~/.cache/ruaflow"), "venv-dashboards")
CHDB_PACKAGE = "chdb-core==26.9.0"
# Writes the IP database (IPinfo Lite layout) the detector group's enrichment reads.
MMDB_PACKAGE = "mmdb-writer==0.2.7"

CH_TYPE = "grafana-clickhouse-datasource"
PROM_TYPE = "prometheus"
# The tables the detector group's enrichment fills beside detection: a target reading
# nothing else may be empty in the first pass.
ENRICHMENT_ONLY = {"sources", "source_services"}
TABLES = ["envelopes", "reports", "dmarc_records", "tlsrpt_policies", "tlsrpt_failures", "agg_source_day",
          "agg_selector_day", "sources", "source_services", "dead_letters", "alerts", "detector_signals",
          "failure_reports", "senders", "sender_networks", "notices"]
WEEK = 7 * 86400


class Failures:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)
        print(f"FAIL {msg}", flush=True)

    def check(self, ok, msg):
        if not ok:
            self.add(msg)
        return ok


def log(msg):
    print(msg, flush=True)


def need(what):
    """Something the test needs is missing: fatal with CI=true, a skip otherwise."""
    if CI:
        sys.exit(f"tests/dashboards.py: {what} (CI=true: nothing may be skipped)")
    log(f"skipped: {what}")
    sys.exit(0)


# ---------------------------------------------------------------- dashboards and provisioning

def load_dashboards():
    dashboards = {}
    for name in sorted(os.listdir(DASHBOARD_DIR)):
        if name.endswith(".json"):
            with open(os.path.join(DASHBOARD_DIR, name)) as f:
                dashboards[name] = json.load(f)
    return dashboards


def provisioned_datasources():
    """(uid -> type) from the provisioning YAML, read with a regex: the files are ours and
    list each data source as `- name:` followed by its `uid:` and `type:`."""
    sources = {}
    ds_dir = os.path.join(PROVISIONING_DIR, "datasources")
    for name in sorted(os.listdir(ds_dir)):
        with open(os.path.join(ds_dir, name)) as f:
            text = f.read()
        for block in re.split(r"\n\s*- name:", text)[1:]:
            uid = re.search(r"^\s*uid:\s*(\S+)", block, re.M)
            typ = re.search(r"^\s*type:\s*(\S+)", block, re.M)
            if uid and typ:
                sources[uid.group(1)] = typ.group(1)
    return sources


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def sql_tables(sql):
    """Tables a query reads (FROM/JOIN of a plain name)."""
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)\b(?!\s*\()", sql, re.I)) & set(TABLES)


def schema_check(dashboards, sources, fail):
    """The static rules: ids, data sources, formats, FINAL, no auth arrays."""
    fail.check(set(sources.values()) >= {CH_TYPE, PROM_TYPE},
               f"provisioning must define a {CH_TYPE} and a {PROM_TYPE} data source, has {sources}")
    with open(os.path.join(PROVISIONING_DIR, "dashboards", "ruaflow.yaml")) as f:
        provider = f.read()
    fail.check("/var/lib/grafana/dashboards/ruaflow" in provider, "the dashboards provider must read /var/lib/grafana/dashboards/ruaflow")
    uids = {}
    for name, dash in dashboards.items():
        where = f"{name}"
        for key in ("uid", "title", "panels", "templating", "annotations", "time"):
            fail.check(key in dash, f"{where}: no {key!r}")
        fail.check(dash.get("uid") not in uids, f"{where}: uid {dash.get('uid')!r} also in {uids.get(dash.get('uid'))}")
        uids[dash.get("uid")] = name
        fail.check(dash.get("editable") is True, f"{where}: dashboards are editable")

        def ds_ok(ds, what):
            if not isinstance(ds, dict):
                return fail.add(f"{where}: {what}: datasource must be {{type, uid}}, is {ds!r}")
            uid, typ = ds.get("uid"), ds.get("type")
            fail.check(uid in sources, f"{where}: {what}: datasource uid {uid!r} is not provisioned ({sorted(sources)})")
            fail.check(sources.get(uid) == typ,
                       f"{where}: {what}: datasource {uid!r} has type {typ!r}, provisioned as {sources.get(uid)!r}")

        ids, titles = set(), set()
        for panel in all_panels(dash):
            pid = panel.get("id")
            fail.check(isinstance(pid, int), f"{where}: panel {panel.get('title')!r} has no integer id")
            fail.check(pid not in ids, f"{where}: panel id {pid} is not unique")
            ids.add(pid)
            if panel.get("type") == "row":
                continue
            what = f"panel {pid} {panel.get('title')!r}"
            fail.check(bool(panel.get("title")), f"{where}: {what}: no title")
            fail.check(panel.get("title") not in titles, f"{where}: {what}: title not unique in the dashboard")
            titles.add(panel.get("title"))
            fail.check(bool(panel.get("description")), f"{where}: {what}: no description")
            gp = panel.get("gridPos", {})
            fail.check(all(k in gp for k in "hwxy") and gp["x"] + gp["w"] <= 24, f"{where}: {what}: bad gridPos {gp}")
            ds_ok(panel.get("datasource"), what)
            targets = panel.get("targets") or []
            fail.check(bool(targets), f"{where}: {what}: no targets")
            refs = [t.get("refId") for t in targets]
            fail.check(len(set(refs)) == len(refs), f"{where}: {what}: refIds not unique {refs}")
            for t in targets:
                ds_ok(t.get("datasource"), f"{what} target {t.get('refId')}")
                if (t.get("datasource") or {}).get("type") == CH_TYPE:
                    sql_ok(t, f"{where}: {what} target {t.get('refId')}", fail)
                    if panel.get("type") == "timeseries":
                        fail.check(t.get("format") == 0, f"{where}: {what}: a time series target uses format 0 (time series)")
                        fail.check(re.search(r"\bAS time\b", t.get("rawSql", "")) is not None,
                                   f"{where}: {what}: a time series query selects a `time` column")
                elif (t.get("datasource") or {}).get("type") == PROM_TYPE:
                    fail.check(bool(t.get("expr")), f"{where}: {what}: Prometheus target without expr")
        for var in dash.get("templating", {}).get("list", []):
            what = f"variable {var.get('name')!r}"
            if var.get("type") == "query":
                ds_ok(var.get("datasource"), what)
                fail.check(isinstance(var.get("query"), str) and var["query"].strip(), f"{where}: {what}: query must be SQL text")
                sql_ok({"rawSql": var.get("query", ""), "editorType": "sql", "format": 1}, f"{where}: {what}", fail)
            elif var.get("type") != "custom":
                fail.add(f"{where}: {what}: type {var.get('type')!r} is not handled by this test")
        for ann in dash.get("annotations", {}).get("list", []):
            if ann.get("builtIn"):
                continue
            what = f"annotation {ann.get('name')!r}"
            ds_ok(ann.get("datasource"), what)
            ds_ok((ann.get("target") or {}).get("datasource"), what + " target")
            sql_ok(ann.get("target") or {}, f"{where}: {what}", fail)
            fail.check(re.search(r"\bAS time\b", (ann.get("target") or {}).get("rawSql", "")) is not None,
                       f"{where}: {what}: selects no `time` column")
    fail.check(len(uids) >= 6, f"expected at least the six dashboards, found {sorted(uids)}")


def sql_ok(target, where, fail):
    sql = target.get("rawSql") or ""
    fail.check(sql.strip() != "", f"{where}: empty SQL")
    fail.check(target.get("editorType") == "sql", f"{where}: editorType must be 'sql'")
    fail.check(target.get("format") in (0, 1), f"{where}: format must be 0 (time series) or 1 (table), is {target.get('format')!r}")
    fail.check(not sql.rstrip().endswith(";"), f"{where}: trailing semicolon")
    for m in re.finditer(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)\b(\s+FINAL\b)?", sql, re.I):
        if m.group(1) in TABLES:
            fail.check(m.group(2) is not None, f"{where}: reads {m.group(1)} without FINAL")
    fail.check(not re.search(r"\b(dkim_auth|spf_auth)\b", sql), f"{where}: reads the auth arrays (cross products)")
    fail.check(not re.search(r"\barrayJoin\b", sql, re.I), f"{where}: arrayJoin multiplies rows; use the plain columns")


# ---------------------------------------------------------------- expansion (Grafana + plugin)

def macro_args(text, open_index):
    """Arguments of a macro call whose '(' is at open_index, split on top-level commas, and
    the index after the closing ')' (the plugin's getMacroArgs / sqlds parseArgs)."""
    depth, args, start = 0, [], open_index + 1
    for i in range(open_index, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    raise ValueError(f"unbalanced macro arguments at {text[open_index:open_index + 60]!r}")


def conditional_all(sql, variables):
    """The plugin's applyConditionalAll: `$__conditionalAll(cond, $var)` is `cond`, or `1=1`
    when the variable's current value is All (or empty)."""
    macro = "$__conditionalAll("
    while (i := sql.rfind(macro)) != -1:
        args, end = macro_args(sql, i + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments: {sql[i:end]}")
        m = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if m:
            var = variables.get(m.group(0))
            if var is None:
                raise ValueError(f"$__conditionalAll on unknown variable {m.group(0)}")
            if var["all"] or not var["values"]:
                phrase = "1=1"
        sql = sql[:i] + phrase + sql[end:]
    return sql


TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def format_value(values, fmt, multi):
    if fmt is None:
        # The plugin's format(): arrays become 'a','b'; a single value goes in raw.
        return "'" + "','".join(values) + "'" if multi else values[0]
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    raise ValueError(f"variable format {fmt!r} is not implemented by this test")


def template_replace(sql, variables, builtins):
    """Grafana's templateSrv.replace: known variables are formatted, anything else ($__
    macros of the plugin) is left for the backend."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        var = variables.get(name)
        if var is None:
            return m.group(0)
        values = var["options"] if var["all"] else var["values"]
        return format_value(values, fmt, var["multi"])
    return TEMPLATE.sub(repl, sql)


def to_datetime(t):
    return f"toDateTime({int(t.timestamp())})"


def to_date(t):
    return f"toDate('{t.strftime('%Y-%m-%d')}')"


def backend_macros(sql, t_from, t_to, interval_s):
    """grafana/clickhouse-datasource pkg/macros (plus sqlds' argument parsing)."""
    def time_filter(a):
        return f"{a[0]} >= {to_datetime(t_from)} AND {a[0]} <= {to_datetime(t_to)}"

    def time_filter_ms(a):
        f = f"fromUnixTimestamp64Milli({int(t_from.timestamp() * 1000)})"
        t = f"fromUnixTimestamp64Milli({int(t_to.timestamp() * 1000)})"
        return f"{a[0]} >= {f} AND {a[0]} <= {t}"

    def date_filter(a):
        return f"{a[0]} >= {to_date(t_from)} AND {a[0]} <= {to_date(t_to)}"

    def date_time_filter(a):
        return (f"({a[0]} >= {to_date(t_from)} AND {a[0]} <= {to_date(t_to)}) AND "
                f"({a[1]} >= {to_datetime(t_from)} AND {a[1]} <= {to_datetime(t_to)})")

    macros = {
        "fromTime": (0, lambda a: to_datetime(t_from)),
        "toTime": (0, lambda a: to_datetime(t_to)),
        "fromTime_ms": (0, lambda a: f"fromUnixTimestamp64Milli({int(t_from.timestamp() * 1000)})"),
        "toTime_ms": (0, lambda a: f"fromUnixTimestamp64Milli({int(t_to.timestamp() * 1000)})"),
        "timeFilter": (1, time_filter),
        "timeFilter_ms": (1, time_filter_ms),
        "dateFilter": (1, date_filter),
        "dateTimeFilter": (2, date_time_filter),
        "dt": (2, date_time_filter),
        "timeInterval": (1, lambda a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {max(interval_s, 1)} second)"),
        "timeInterval_ms": (1, lambda a: f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {max(interval_s * 1000, 1)} millisecond)"),
        "interval_s": (0, lambda a: str(max(interval_s, 1))),
    }
    for name, (arity, render) in macros.items():
        pattern = re.compile(r"\$__" + name + r"\b")
        while (m := pattern.search(sql)):
            args, end = [], m.end()
            if sql[m.end():m.end() + 1] == "(":
                raw, end = macro_args(sql, m.end())
                args = [a.strip() for a in raw]
            if len(args) != arity:
                raise ValueError(f"$__{name} expects {arity} arguments, got {args}")
            sql = sql[:m.start()] + render(args) + sql[end:]
    left = re.search(r"\$\w+|\$\{[^}]*\}|\[\[\w+\]\]", sql)
    if left:
        raise ValueError(f"unexpanded {left.group(0)} (a macro or variable this test and the plugin do not know)")
    return sql


def expand(sql, variables, t_from, t_to, interval_s):
    sql = conditional_all(sql, variables)
    sql = template_replace(sql, variables, {})
    return backend_macros(sql, t_from, t_to, interval_s)


# ---------------------------------------------------------------- ClickHouse over HTTP

class ClickHouse:
    def __init__(self, url, database=None):
        self.url = url.rstrip("/")
        self.database = database

    def run(self, sql, data=None, timeout=120):
        params = {}
        if self.database:
            params["database"] = self.database
        body = sql.encode()
        if data is not None:
            params["query"] = sql
            body = data
        url = self.url + "/?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(e.read().decode(errors="replace").strip()) from None

    def json(self, sql):
        return json.loads(self.run(sql.rstrip() + "\nFORMAT JSON"))

    def scalar(self, sql):
        return self.run(sql + " FORMAT TSV").decode().strip()


# ---------------------------------------------------------------- processes

def free_ports(n):
    """n distinct free loopback ports (held together while chosen, so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"command failed ({out.returncode}): {' '.join(map(str, cmd))}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, probe, timeout, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a probe of a starting service
            last = e
        time.sleep(interval)
    sys.exit(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def stop(proc, name, timeout=60):
    """SIGTERM and wait; the processes finish in-flight work and exit 0."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"{name} did not stop within {timeout}s of SIGTERM"
    return None if proc.returncode == 0 else f"{name} exited {proc.returncode}"


# ---------------------------------------------------------------- chdb (current ClickHouse)

def ensure_venv():
    """The venv with chdb-core and mmdb-writer, created when missing; None when it cannot
    be made."""
    python = os.path.join(VENV, "bin", "python")
    probe = [python, "-c", "from chdb import session; import mmdb_writer"]
    if os.path.exists(python) and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"creating {VENV} with {CHDB_PACKAGE} (current ClickHouse, in-process) and {MMDB_PACKAGE}")
    os.makedirs(os.path.dirname(VENV), exist_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", VENV],
             [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", CHDB_PACKAGE, MMDB_PACKAGE]]
    for step in steps:
        out = subprocess.run(step, capture_output=True, text=True)
        if out.returncode != 0:
            log(f"cannot create the chdb venv: {' '.join(step)}\n{out.stderr[-2000:]}")
            return None
    return python if subprocess.run(probe, capture_output=True).returncode == 0 else None


CHDB_WORKER = r'''
import json, sys
from chdb import session
job = json.load(open(sys.argv[1]))
s = session.Session(job["path"])
out = {"version": s.query("SELECT version()", "TSV").bytes().decode().strip(), "results": {}}
if job.get("schema"):
    s.query(f"CREATE DATABASE IF NOT EXISTS {job['database']}")
for st in job.get("schema", []):
    s.query(st.replace("CREATE TABLE IF NOT EXISTS ", f"CREATE TABLE IF NOT EXISTS {job['database']}."))
for t in job.get("tables", []):
    s.query(f"INSERT INTO {job['database']}.{t['name']} SELECT * FROM file('{t['path']}', 'TSV', '{t['structure']}')")
s.query(f"USE {job['database']}")
for q in job.get("queries", []):
    try:
        res = json.loads(s.query(q["sql"], "JSON").bytes() or b'{"data": [], "rows": 0}')
        out["results"][q["id"]] = {"ok": True, "rows": res.get("rows", 0), "data": res.get("data", [])[:500]}
    except Exception as e:
        out["results"][q["id"]] = {"ok": False, "error": str(e)[:1500]}
json.dump(out, open(sys.argv[2], "w"))
'''


class Chdb:
    def __init__(self, python, workdir, database):
        self.python = python
        self.dir = os.path.join(workdir, "chdb")
        os.makedirs(self.dir, exist_ok=True)
        self.database = database
        self.worker = os.path.join(self.dir, "worker.py")
        with open(self.worker, "w") as f:
            f.write(CHDB_WORKER)
        self.version = None
        self.calls = 0

    def job(self, schema=None, tables=None, queries=None):
        self.calls += 1
        job_path = os.path.join(self.dir, f"job{self.calls}.json")
        out_path = os.path.join(self.dir, f"out{self.calls}.json")
        with open(job_path, "w") as f:
            json.dump({"path": os.path.join(self.dir, "data"), "database": self.database, "schema": schema or [],
                       "tables": tables or [], "queries": queries or []}, f)
        out = subprocess.run([self.python, self.worker, job_path, out_path], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"chdb worker failed:\n{out.stderr[-3000:]}")
        with open(out_path) as f:
            res = json.load(f)
        self.version = res["version"]
        return res["results"]


def split_statements(path):
    """One SQL file split the way `ruaflow migrate` does: comment lines dropped, a
    statement ends with a line ending in ';'."""
    statements, current = [], []
    with open(path) as f:
        for line in f.read().splitlines():
            if line.lstrip().startswith("--"):
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("\n".join(current).strip().rstrip(";"))
                current = []
    return [s for s in statements if s]


def schema_statements():
    """The migrations, in order (the retention template is not one)."""
    statements = []
    for name in sorted(n for n in os.listdir(SCHEMA_DIR) if n.endswith(".sql")):
        path = os.path.join(SCHEMA_DIR, name)
        if path != RETENTION_TTL:
            statements += split_statements(path)
    return [s for s in statements if s]


def export_tables(ch, workdir, tables, tag):
    """SELECT * of each table (FORMAT TSV) from the 18.16 server into files chdb reads."""
    out = []
    for table in tables:
        cols = ch.run(f"SELECT name, type FROM system.columns WHERE database = '{ch.database}' AND table = '{table}' FORMAT TSV").decode()
        structure = ", ".join(f"{n} {t}" for n, t in (line.split("\t") for line in cols.strip().splitlines()))
        path = os.path.join(workdir, f"{tag}-{table}.tsv")
        # 18.16 writes the zero DateTime (an alert not acknowledged) as 0000-00-00, which
        # current versions do not read back as zero.
        with open(path, "wb") as f:
            f.write(ch.run(f"SELECT * FROM {table} FORMAT TSV").replace(b"0000-00-00 00:00:00", b"1970-01-01 00:00:00"))
        out.append({"name": table, "path": path, "structure": structure})
    return out


# ---------------------------------------------------------------- the queries of the dashboards

class Query:
    def __init__(self, qid, dash, what, sql, scenario, interval_s, kind, tables):
        self.id = qid
        self.dash = dash
        self.what = what
        self.sql = sql
        self.scenario = scenario
        self.interval_s = interval_s
        self.kind = kind
        self.tables = tables

    def label(self):
        return f"{self.dash} / {self.what} [{self.scenario}, interval {self.interval_s}s]"


def dashboard_targets(dash):
    """(what, rawSql) of every ClickHouse query of a dashboard: panels, variables, annotations."""
    out = []
    for panel in all_panels(dash):
        for t in panel.get("targets") or []:
            if (t.get("datasource") or {}).get("type") == CH_TYPE:
                out.append((f"panel {panel['title']!r} {t['refId']}", t["rawSql"], "panel"))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            out.append((f"variable {var['name']!r}", var["query"], "variable"))
    for ann in dash.get("annotations", {}).get("list", []):
        target = ann.get("target") or {}
        if (target.get("datasource") or {}).get("type") == CH_TYPE:
            out.append((f"annotation {ann['name']!r}", target["rawSql"], "annotation"))
    return out


def variable_models(dash, ch, t_from, t_to):
    """Each variable with its options (variable queries run with the variables before it at
    All, as Grafana resolves them in order)."""
    models = {}
    for var in dash.get("templating", {}).get("list", []):
        name = var["name"]
        if var["type"] == "custom":
            options = [o.strip() for o in var["query"].split(",") if o.strip()]
        else:
            sql = expand(var["query"], models, t_from, t_to, 3600)
            options = [list(row.values())[0] for row in ch.json(sql)["data"]]
        models[name] = {"options": options, "values": options[:1], "all": True, "multi": bool(var.get("multi")),
                        "query": var.get("query") if var["type"] == "query" else None}
    return models


def scenarios(dash, ch, t_from, t_to):
    """(name, variables) to run every query with: all at All; each variable at one and at two
    real values; a domain with one of its own reporters."""
    base = variable_models(dash, ch, t_from, t_to)

    def with_values(changes):
        models = {k: dict(v) for k, v in base.items()}
        for name, values in changes.items():
            models[name].update(values=values, all=False)
        return models

    out = [("all variables All", with_values({}))]
    for name, var in base.items():
        if var["options"]:
            out.append((f"{name}={var['options'][0]}", with_values({name: var["options"][:1]})))
        if len(var["options"]) >= 2:
            out.append((f"{name}={','.join(var['options'][:2])}", with_values({name: var["options"][:2]})))
    if "domain" in base and base["domain"]["options"] and "reporter" in base:
        domain = base["domain"]["options"][0]
        models = with_values({"domain": [domain]})
        reporters = [list(r.values())[0] for r in ch.json(expand(base["reporter"]["query"], models, t_from, t_to, 3600))["data"]]
        if reporters:
            models["reporter"].update(values=reporters[-1:], all=False)
            out.append((f"domain={domain} reporter={reporters[-1]}", models))
    return out


def build_queries(dashboards, ch, ranges):
    queries = []
    for name, dash in dashboards.items():
        t_from, t_to = ranges[dash["uid"]]
        for scenario, variables in scenarios(dash, ch, t_from, t_to):
            for what, raw, kind in dashboard_targets(dash):
                intervals = [3600, WEEK] if "$__interval_s" in raw and scenario == "all variables All" else [3600]
                if dash["uid"] == "ruaflow-pipeline" and "$__interval_s" in raw:
                    intervals = [60, 3600] if scenario == "all variables All" else [60]
                for interval in intervals:
                    sql = expand(raw, variables, t_from, t_to, interval)
                    queries.append(Query(f"q{len(queries)}", dash["uid"], what, sql, scenario, interval, kind, sql_tables(raw)))
    return queries


def has_data(rows):
    """At least one value that is not zero, empty or null (an aggregate over nothing gives
    one row of zeros)."""
    for row in rows:
        for v in row.values():
            if v not in (None, "", 0, "0", 0.0, "nan", "0.0", "1970-01-01 00:00:00", "0000-00-00 00:00:00"):
                return True
    return False


def judge(q, ok, error, rows, data, engine, allow_empty, fail):
    if not ok:
        return fail.add(f"{engine}: {q.label()} failed: {error}\n---\n{q.sql}\n---")
    if allow_empty:
        return True
    if rows == 0 or not has_data(data):
        return fail.add(f"{engine}: {q.label()} returned no data (rows={rows}; tables {sorted(q.tables)})\n---\n{q.sql}\n---")
    return True


def run_on_clickhouse(ch, queries, allowed_empty, fail):
    results = {}
    for q in queries:
        try:
            res = ch.json(q.sql)
            results[q.id] = {"ok": True, "rows": res["rows"], "data": res["data"]}
        except RuntimeError as e:
            results[q.id] = {"ok": False, "error": str(e)[:1500]}
        r = results[q.id]
        judge(q, r["ok"], r.get("error"), r.get("rows", 0), r.get("data", []), "ClickHouse 18.16", allowed_empty(q), fail)
    return results


def run_on_chdb(chdb, queries, allowed_empty, fail, **load):
    results = chdb.job(queries=[{"id": q.id, "sql": q.sql} for q in queries], **load)
    for q in queries:
        r = results[q.id]
        judge(q, r["ok"], r.get("error"), r.get("rows", 0), r.get("data", []), f"ClickHouse {chdb.version} (chdb)", allowed_empty(q), fail)
    return results


def ttl_checks(chdb, fail):
    """The retention TTLs (0004_retention_ttl.sql, ages filled in as `ruaflow migrate
    --config` does) apply on current ClickHouse, and each table then shows the TTL
    clause ruaflow looks for before sending a TTL again."""
    ages = {"records_days": 30, "aggregates_days": 400}
    queries, expect = [], []
    for i, statement in enumerate(split_statements(RETENTION_TTL)):
        tier = next(t for t in ages if "{" + t + "}" in statement)
        words = statement.split()
        table, column = words[2], words[5]
        queries.append({"id": f"ttl{i}", "sql": statement.replace("{" + tier + "}", str(ages[tier]))})
        queries.append({"id": f"engine{i}", "sql": f"SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = '{table}'"})
        expect.append((i, table, f"TTL {column} + toIntervalDay({ages[tier]})"))
    results = chdb.job(queries=queries)
    for i, table, clause in expect:
        r = results[f"ttl{i}"]
        if fail.check(r["ok"], f"retention TTL of {table} on ClickHouse {chdb.version} (chdb): {r.get('error')}"):
            engine = (results[f"engine{i}"].get("data") or [{}])[0].get("engine_full", "")
            fail.check(clause in engine, f"{table}: {clause!r} not in {engine!r} on ClickHouse {chdb.version}")
    log(f"retention TTLs: {len(expect)} tables on ClickHouse {chdb.version} (chdb)")


# ---------------------------------------------------------------- Prometheus

def registered_metrics():
    """Metric names registered in the source (metrics::counter!/gauge!/histogram!)."""
    names = set()
    for top in ("ingest", "processor", "src", "schema"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".rs"):
                    with open(os.path.join(dirpath, name)) as f:
                        names |= set(re.findall(r'metrics::(?:counter|gauge|histogram)!\(\s*"([a-z0-9_]+)"', f.read()))
    return names


def exposed_metrics(texts):
    names = set()
    for text in texts:
        for line in text.splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def base_name(metric):
    return re.sub(r"_(sum|count|bucket)$", "", metric)


def prometheus_targets(dashboards):
    out = []
    for dash in dashboards.values():
        for panel in all_panels(dash):
            for t in panel.get("targets") or []:
                if (t.get("datasource") or {}).get("type") == PROM_TYPE:
                    out.append((f"{dash['uid']} / panel {panel['title']!r} {t['refId']}", t["expr"]))
    return out


def prometheus_binary():
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)


def ensure_prometheus():
    """Debian's prometheus package, installed when missing (as root or with sudo)."""
    if prometheus_binary():
        return prometheus_binary()
    sudo = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
    if sudo is None:
        return None
    log("installing Debian's prometheus (the PromQL panels run on it)")
    install = sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(install, capture_output=True)
    return prometheus_binary()


def start_prometheus(workdir, targets):
    """Debian's Prometheus with the compose stack's job names, scraping the local processes
    every second."""
    binary = prometheus_binary()
    if not binary:
        return None, None
    with open(os.path.join(COMPOSE_DIR, "prometheus.yml")) as f:
        jobs = re.findall(r"job_name:\s*(\S+)", f.read())
    port, = free_ports(1)
    config = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "scrape_configs:"]
    for job in jobs:
        if job not in targets:
            sys.exit(f"dashboards/compose/prometheus.yml job {job} has no local process to scrape in this test")
        config += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['{targets[job]}']"]
    path = os.path.join(workdir, "prometheus.yml")
    with open(path, "w") as f:
        f.write("\n".join(config) + "\n")
    log_file = open(os.path.join(workdir, "prometheus.log"), "w")
    proc = subprocess.Popen([binary, f"--config.file={path}", f"--storage.tsdb.path={workdir}/prometheus-data",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    wait_for("Prometheus", lambda: "Healthy" in http_get(url + "/-/healthy") or "OK" in http_get(url + "/-/healthy"), 60)
    return proc, url


def scrapes(url):
    """The fewest samples of `up` any ruaflow job has in Prometheus (0 before the first)."""
    query = urllib.parse.urlencode({"query": 'min(count_over_time(up{job=~"ruaflow.*"}[5m]))'})
    result = json.loads(http_get(f"{url}/api/v1/query?{query}"))["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def check_prometheus(url, dashboards, metrics_texts, started, fail):
    exposed = exposed_metrics(metrics_texts)
    registered = registered_metrics()
    targets = prometheus_targets(dashboards)
    fail.check(bool(targets), "the Pipeline dashboard has no Prometheus targets")
    checked = 0
    for what, expr in targets:
        names = {n for n in re.findall(r"\bruaflow_[a-z0-9_]+", expr)}
        for n in names:
            fail.check(n in exposed or base_name(n) in registered,
                       f"{what}: metric {n} is neither in the processes' /metrics nor registered in the source")
        if url is None:
            continue
        q = expr.replace("$__rate_interval", "10s").replace("$__interval", "2s").replace("$__range", "5m")
        params = urllib.parse.urlencode({"query": q, "start": int(started) - 5, "end": int(time.time()) + 1, "step": "2"})
        try:
            res = json.loads(http_get(f"{url}/api/v1/query_range?{params}", timeout=30))
        except urllib.error.HTTPError as e:
            fail.add(f"Prometheus: {what}: {expr!r} failed: {e.read().decode(errors='replace')}")
            continue
        if not fail.check(res.get("status") == "success", f"Prometheus: {what}: {expr!r}: {res}"):
            continue
        checked += 1
        series = res["data"]["result"]
        absent = [n for n in names if n not in exposed]
        if names and len(absent) == len(names):
            log(f"  allowed empty (no such metric yet in /metrics: {', '.join(sorted(absent))}): {what}")
            continue
        fail.check(any(any(float(v) == float(v) for _, v in s["values"]) for s in series),
                   f"Prometheus: {what}: {q!r} returned no data")
    return checked, len(targets)


# ---------------------------------------------------------------- the data set

def embedded_reference(binary, inputs, db):
    run([binary, "run", "--once", "--offline", "--db", db, inputs])
    con = sqlite3.connect(db)
    one = lambda sql: con.execute(sql).fetchone()[0] or 0  # noqa: E731
    ref = {
        "reports": one("SELECT count(*) FROM reports"),
        "records": one("SELECT count(*) FROM dmarc_records"),
        "messages": one("SELECT sum(count) FROM dmarc_records"),
        "tls_sessions": one("SELECT sum(successful_sessions) + sum(failed_sessions) FROM tlsrpt_policies"),
        "dead_letters": one("SELECT count(*) FROM dead_letters"),
        "alerts": one("SELECT count(*) FROM alerts"),
        "failure_reports": one("SELECT count(*) FROM failure_reports"),
    }
    con.close()
    # The sender status of each failure report's source, as the embedded store tells it.
    out = subprocess.run([binary, "failures", "--db", db, "--json"], check=True, capture_output=True, text=True).stdout
    ref["failures_from_unknown"] = sum(1 for line in out.splitlines() if json.loads(line)["sender"] == "unknown")
    return ref


def failure_report_eml(reporter, domain, ip, arrival, message_id, selector, crlf=True):
    """An ARF failure report (RFC 6591) as a receiver sends it, with the original's headers."""
    date = email.utils.formatdate(arrival, usegmt=True)
    lines = [
        f"From: DMARC Failure Reports <ruf@{reporter}>", "To: ruf@" + domain,
        f"Subject: DMARC failure report for {domain} from {ip}", f"Date: {date}",
        f"Message-ID: <ruf-{message_id}@{reporter}>", "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"', "",
        "--b", "Content-Type: text/plain", "", f"A message from {ip} failed DMARC for {domain}.", "",
        "--b", "Content-Type: message/feedback-report", "",
        "Feedback-Type: auth-failure", "User-Agent: dashboards-test/1.0", "Version: 1",
        f"Original-Mail-From: <bounce-{message_id}@{domain}>", f"Original-Rcpt-To: <someone@{reporter}>",
        f"Arrival-Date: {date}", f"Source-IP: {ip}", f"Reported-Domain: {domain}",
        "Auth-Failure: dmarc", "Auth-Failure: spf", f"DKIM-Domain: {domain}", f"DKIM-Selector: {selector}",
        "Delivery-Result: reject", "Identity-Alignment: dkim",
        f"Authentication-Results: mx.{reporter}; dkim=pass header.d={domain}; spf=fail smtp.mailfrom=bounce-{message_id}@{domain}",
        "", "--b", "Content-Type: text/rfc822-headers", "",
        f"From: Jane Doe <jane.doe@{domain}>", f"To: someone@{reporter}", "Subject: Invoice attached",
        f"Date: {date}", f"Message-ID: <{message_id}@{domain}>", "", "--b--", ""]
    return ("\r\n" if crlf else "\n").join(lines).encode()


def write_failure_reports(binary, data, inputs):
    """Failure reports inside the data set's report days: from the replay flood's networks
    (unknown sources), from a source that sends SPF-aligned mail for the domain
    (authorized), for a second domain, and one report twice (LF and CRLF lines: the same
    report). Returns how many files were written and how many reports they hold."""
    with open(os.path.join(data, "labels.json")) as f:
        labels = json.load(f)
    replay = next(e for e in labels["events"] if e["kind"] == "dkim_replay")
    domain, selector = replay["domain"], replay.get("selector") or "s1"
    other = next(d["name"] for d in labels["domains"] if d["name"] != domain)
    # A source SPF authorizes: a record of the domain's mail with SPF pass, from one report.
    candidates = sorted(n for n in os.listdir(inputs) if n.startswith("google.com!" + domain + "!") and ".json" not in n)
    parsed = json.loads(subprocess.run([binary, "parse", "--json", os.path.join(inputs, candidates[0])], check=True,
                                       capture_output=True, text=True).stdout.splitlines()[0])
    record = next(r for r in parsed["report"]["records"] if r["spf"] == "pass")
    authorized_ip, authorized_day = record["source_ip"], parsed["begin"]
    reports = []
    for i, day in enumerate(d["day"] for d in replay["daily"]):
        for j in range(2):
            net = replay["networks"][(2 * i + j) % len(replay["networks"])].split("/")[0].split(".")
            ip = f"{net[0]}.{net[1]}.{10 + i}.{20 + j}"
            reports.append(("gmail.example", domain, ip, day + 3600 * (9 + j), f"replay-{i}-{j}", selector))
    reports.append(("yahoo.example", domain, authorized_ip, authorized_day + 7200, "authorized-1", selector))
    reports.append(("gmail.example", other, "198.51.100.77", authorized_day + 10800, "other-1", "k1"))
    for n, r in enumerate(reports):
        with open(os.path.join(inputs, f"zz-failure-{n}.eml"), "wb") as f:
            f.write(failure_report_eml(*r))
    with open(os.path.join(inputs, "zz-failure-0-again.eml"), "wb") as f:
        f.write(failure_report_eml(*reports[0], crlf=False))
    return {"files": len(reports) + 1, "stored": len(reports)}


def clickhouse_totals(ch):
    row = ch.json("""SELECT (SELECT count() FROM reports FINAL) AS reports,
                            (SELECT count() FROM dmarc_records FINAL) AS records,
                            (SELECT sum(count) FROM dmarc_records FINAL) AS messages,
                            (SELECT count() FROM dead_letters FINAL) AS dead_letters,
                            (SELECT count() FROM failure_reports FINAL) AS failure_reports""")["data"][0]
    return {k: int(v) for k, v in row.items()}


# The mail services the test's PTR names point at (in the built-in service map). A name
# by PTR is shown, never trusted: the sender statuses stay what detection alone says.
PTR_BASES = ["sendgrid.net", "mailgun.org", "amazonses.com"]
COUNTRIES = [("DE", "Germany"), ("FR", "France"), ("US", "United States"), ("NL", "Netherlands"),
             ("BR", "Brazil"), ("JP", "Japan"), ("IN", "India"), ("PL", "Poland")]

MMDB_WORKER = r'''
import json, sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
networks = json.load(open(sys.argv[1]))
writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="ipinfo_lite")
for n in networks:
    writer.insert_network(IPSet([n["network"]]), n["record"])
writer.to_db_file(sys.argv[2])
'''


def enrichment_world(db, workdir, python):
    """What the detector group's enrichment will find for the data set's sources: an
    IP database (IPinfo Lite layout: documentation ASNs 64496-64511, an AS name and
    domain, a country per network) and a nameserver (dnsmasq) answering a PTR name for
    every address. Returns (dnsmasq process, its address, the database's path, the
    number of sources)."""
    con = sqlite3.connect(db)
    sources = con.execute("SELECT ip, network FROM sources ORDER BY ip").fetchall()
    con.close()
    networks = sorted({network for _, network in sources})
    records = []
    for i, network in enumerate(networks):
        asn = 64496 + i % 16
        code, country = COUNTRIES[i % len(COUNTRIES)]
        records.append({"network": network, "record": {"asn": f"AS{asn}", "as_name": f"Example AS {asn}",
                                                       "as_domain": f"as{asn}.example", "country_code": code,
                                                       "country": country}})
    spec, mmdb, script = (os.path.join(workdir, n) for n in ("ipinfo.json", "ipinfo_lite.mmdb", "write_mmdb.py"))
    with open(spec, "w") as f:
        json.dump(records, f)
    with open(script, "w") as f:
        f.write(MMDB_WORKER)
    run([python, script, spec, mmdb])
    conf = os.path.join(workdir, "dnsmasq.conf")
    with open(conf, "w") as f:
        for i, (ip, _) in enumerate(sources):
            name = f"o{i}.{PTR_BASES[i % len(PTR_BASES)]}"
            f.write(f"ptr-record={ipaddress.ip_address(ip).reverse_pointer},{name}\n")
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    for _ in range(5):
        (port,) = free_ports(1)
        proc = subprocess.Popen([dnsmasq, "--no-daemon", f"--conf-file={conf}", f"--port={port}",
                                 "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                                 "--local=/in-addr.arpa/", "--local=/ip6.arpa/", "--pid-file="],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(workdir, "dnsmasq.log"), "w"))
        deadline = time.time() + 10
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc, f"127.0.0.1:{port}", mmdb, len(sources)
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    need("dnsmasq did not start (tests/run installs it)")


def replay_signal_reference(db):
    """(domain, day) -> the replay detector's daily value, as the embedded pipeline stored it."""
    con = sqlite3.connect(db)
    detector = {(d, day): float(v) for d, day, v in con.execute(
        "SELECT domain, day, value FROM detector_signals WHERE signal = 'replay_unknown_dkim_only' AND subject = ''")}
    con.close()
    return detector


def tsv(v):
    if v is None:
        return "\\N"
    if isinstance(v, float):
        return repr(v)
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def day_text(unix):
    return datetime.datetime.fromtimestamp(int(unix), datetime.timezone.utc).strftime("%Y-%m-%d")


# ---------------------------------------------------------------- cross-checks

def number(v):
    return float(v) if v is not None else 0.0


def find(queries, results, dash, what, scenario="all variables All", interval=3600):
    for q in queries:
        if q.dash == dash and q.what == what and q.scenario == scenario and q.interval_s == interval:
            return q, results.get(q.id)
    return None, None


def cross_checks(engine, queries, results, ref, detector, fail):
    def total(dash, what, column, interval=3600):
        q, r = find(queries, results, dash, what, interval=interval)
        if not fail.check(q is not None and r and r.get("ok"), f"{engine}: no result for {dash} / {what}"):
            return None
        return sum(number(row[column]) for row in r["data"])

    for interval in (3600, WEEK):
        got = total("ruaflow-overview", "panel 'Messages by domain' A", "msgs", interval)
        fail.check(got == ref["messages"], f"{engine}: Overview 'Messages by domain' (interval {interval}s) sums to {got}, "
                                           f"the reports hold {ref['messages']} messages")
    got = total("ruaflow-overview", "panel 'Volume' A", "Messages")
    fail.check(got == ref["messages"], f"{engine}: Overview 'Volume' shows {got} messages, the reports hold {ref['messages']}")
    got = total("ruaflow-sources", "panel 'Messages by source status' A", "messages")
    fail.check(got == ref["messages"], f"{engine}: Sources 'Messages by source status' sums to {got}, not {ref['messages']}")
    got = total("ruaflow-tls", "panel 'TLS sessions' A", "Sessions")
    fail.check(got == ref["tls_sessions"], f"{engine}: TLS 'Sessions' shows {got}, the reports hold {ref['tls_sessions']}")
    q, r = find(queries, results, "ruaflow-tls", "panel 'TLS by MX' A")
    if fail.check(q is not None and r and r.get("ok"), f"{engine}: no TLS by MX result"):
        zero = [row for row in r["data"] if number(row["Failed sessions"]) > 0 and not number(row["Share"]) > 0]
        fail.check(not zero, f"{engine}: TLS by MX shows a zero share for failed sessions: {zero[:3]}")
    got = total("ruaflow-failures", "panel 'Failure reports' A", "Reports")
    fail.check(got == ref["failure_reports"], f"{engine}: 'Failure reports' shows {got}, the store holds {ref['failure_reports']}")
    got = total("ruaflow-failures", "panel 'Failure reports' A", "From unknown sources")
    fail.check(got == ref["failures_from_unknown"],
               f"{engine}: 'From unknown sources' shows {got}; the embedded store's sender status says {ref['failures_from_unknown']}")
    got = total("ruaflow-failures", "panel 'Failure reports by sender status' A", "reports")
    fail.check(got == ref["failure_reports"], f"{engine}: 'Failure reports by sender status' sums to {got}, not {ref['failure_reports']}")
    q, r = find(queries, results, "ruaflow-failures", "panel 'Latest failure reports' A")
    if fail.check(q is not None and r and r.get("ok"), f"{engine}: no latest failure reports"):
        leaked = [row for row in r["data"] if "jane.doe" in json.dumps(row) or "bounce-" in json.dumps(row)]
        fail.check(not leaked, f"{engine}: failure reports show local parts: {leaked[:2]}")

    q, r = find(queries, results, "ruaflow-dkim", "panel 'Replay signal: DKIM-only mail from unknown sources' A")
    if fail.check(q is not None and r and r.get("ok"), f"{engine}: no replay signal result"):
        panel = {}
        for row in r["data"]:
            day = int(datetime.datetime.strptime(row["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp())
            panel[(row["domain"], day)] = number(row["unknown DKIM-only"])
        mismatched = [(k, panel.get(k), v) for k, v in sorted(detector.items()) if panel.get(k) != v]
        fail.check(not mismatched and len(panel) == len(detector),
                   f"{engine}: the replay signal panel differs from the detector's stored values on "
                   f"{len(mismatched)} of {len(detector)} domain-days (panel has {len(panel)}): {mismatched[:5]}")
        peak = max(panel.values()) if panel else 0
        fail.check(peak > 100000, f"{engine}: the replay flood does not show in the replay signal panel (peak {peak})")


def sender_model(ch):
    """(domain, source) -> status, as the detector group wrote the sender model."""
    rows = ch.json("SELECT domain, source, status FROM senders FINAL")["data"]
    return {(r["domain"], r["source"]): r["status"] for r in rows}


def in_networks(ip, networks):
    return any(ipaddress.ip_address(ip) in ipaddress.ip_network(n, strict=False) for n in networks)


def status_checks(engine, queries, results, model, replay, fail):
    """The Sources panel shows the status the detector group wrote (over the whole data
    set, the status as of each source's last day is the model's): `unknown` for the
    replay flood's addresses, a known status for the domain's own senders."""
    q, r = find(queries, results, "ruaflow-sources", "panel 'Top sources' A")
    if not fail.check(q is not None and r and r.get("ok"), f"{engine}: no result for Top sources"):
        return
    rows = r["data"]
    differ = [(row["Domain"], row["Source"], row["Status"], model.get((row["Domain"], row["Source"])))
              for row in rows if row["Status"] != model.get((row["Domain"], row["Source"]))]
    fail.check(not differ, f"{engine}: Top sources shows another status than the sender model for {len(differ)} "
                           f"of {len(rows)} sources: {differ[:5]}")
    flood = [row for row in rows if row["Domain"] == replay["domain"] and in_networks(row["Source"], replay["networks"])]
    fail.check(bool(flood), f"{engine}: no address of the replay flood ({replay['networks'][:3]}…) among the Top sources")
    known = [row for row in flood if row["Status"] != "unknown"]
    fail.check(not known, f"{engine}: Top sources shows replay addresses as known senders: {known[:3]}")
    own = [row for row in rows if row["Domain"] == replay["domain"] and row["Status"] in ("authorized", "familiar")]
    fail.check(bool(own), f"{engine}: Top sources shows none of {replay['domain']}'s own senders as known")
    log(f"{engine}: Top sources: {len(rows)} statuses checked against the sender model; {len(flood)} replay "
        f"addresses, {len(own)} of {replay['domain']}'s own senders shown as known")


ACK_NOTE = "ticket 4711"


def acknowledge_replay(binary, url, fail):
    """Acknowledges the detector group's firing replay alert with `ruaflow alerts ack`, as
    an operator would; its id, or None."""
    listed = subprocess.run([binary, "alerts", "--clickhouse", url, "--json", "--since", "2000-01-01"],
                            capture_output=True, text=True, timeout=120)
    if not fail.check(listed.returncode == 0, f"ruaflow alerts --clickhouse failed: {listed.stderr[-2000:]}"):
        return None
    firing = [a for a in map(json.loads, listed.stdout.splitlines())
              if a.get("kind") == "dkim_replay_suspected" and a.get("state") == "firing"]
    if not fail.check(bool(firing), "ruaflow alerts --clickhouse lists no firing replay alert"):
        return None
    alert_id = firing[0]["id"]
    acked = subprocess.run([binary, "alerts", "--clickhouse", url, "ack", str(alert_id), "--note", ACK_NOTE],
                           capture_output=True, text=True, timeout=120)
    fail.check(acked.returncode == 0 and f"acknowledged alert {alert_id}" in acked.stdout,
               f"ruaflow alerts ack {alert_id} failed: {acked.stdout[-500:]} {acked.stderr[-2000:]}")
    return alert_id


def enrichment_checks(engine, queries, results, acked, fail):
    """The sources join carries the enrichment through, and the alerts show, with the
    operator's acknowledgement of the replay alert."""
    q, r = find(queries, results, "ruaflow-sources", "panel 'Top sources' A")
    if fail.check(q is not None and r and r.get("ok"), f"{engine}: no result for Top sources"):
        named = [row for row in r["data"] if any(row["rDNS"].endswith("." + base) for base in PTR_BASES)
                 and row["ASN"].startswith("AS6") and row["Service"].endswith(" (esp)")]
        fail.check(r["data"] and len(named) == len(r["data"]),
                   f"{engine}: Top sources: {len(named)} of {len(r['data'])} rows carry the detector group's enrichment "
                   f"(PTR, AS, service): {[row for row in r['data'] if row not in named][:2]}")
    q, r = find(queries, results, "ruaflow-alerts", "panel 'Alerts' A")
    if fail.check(q is not None and r and r.get("ok"), f"{engine}: no result for Alerts"):
        kinds = {row["Kind"] for row in r["data"]}
        fail.check("dkim_replay_suspected" in kinds, f"{engine}: the replay alert is not in the Alerts table ({kinds})")
        noted = [row for row in r["data"] if row["Ack note"] == ACK_NOTE and row["Acknowledged"]]
        fail.check(acked is None or (len(noted) == 1 and noted[0]["Kind"] == "dkim_replay_suspected"
                                     and noted[0]["State"] == "firing"),
                   f"{engine}: the Alerts table shows {len(noted)} rows acknowledged with the operator's note, "
                   f"not the one replay alert: {noted[:3]}")
        others = [row for row in r["data"] if row["Acknowledged"] and row["Ack note"] != ACK_NOTE]
        fail.check(not others, f"{engine}: the Alerts table shows acknowledgements nobody gave: {others[:3]}")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ruaflow", required=True, help="the ruaflow binary (target/debug/ruaflow)")
    ap.add_argument("--workdir", help="keep the data set, logs and chdb files here")
    ap.add_argument("--keep", action="store_true", help="keep the test database in ClickHouse")
    ap.add_argument("--no-chdb", action="store_true", help="check on ClickHouse 18.16 only (not allowed with CI=true)")
    args = ap.parse_args()
    started_at = time.time()
    binary = os.path.abspath(args.ruaflow)
    fail = Failures()

    # 1. Static checks.
    dashboards = load_dashboards()
    sources = provisioned_datasources()
    schema_check(dashboards, sources, fail)
    panels = sum(1 for d in dashboards.values() for p in all_panels(d) if p.get("type") != "row")
    log(f"schema: {len(dashboards)} dashboards, {panels} panels, data sources {sources}")
    if fail.items:
        sys.exit(f"tests/dashboards.py: {len(fail.items)} schema failures")

    kafka, clickhouse = os.environ.get("RUAFLOW_TEST_KAFKA"), os.environ.get("RUAFLOW_TEST_CLICKHOUSE")
    if not kafka or not clickhouse:
        need("RUAFLOW_TEST_KAFKA / RUAFLOW_TEST_CLICKHOUSE are not set (tests/services/up DIR; . DIR/env)")
    if not os.access(binary, os.X_OK):
        need(f"{binary} is not built")
    venv_python = ensure_venv()
    if not venv_python:
        if CI:
            sys.exit(f"tests/dashboards.py: cannot install {CHDB_PACKAGE} and {MMDB_PACKAGE} into {VENV} (CI=true)")
        need(f"{CHDB_PACKAGE} and {MMDB_PACKAGE} in {VENV} (the IP database for enrichment is written with the latter)")
    chdb_python = venv_python
    if args.no_chdb:
        if CI:
            sys.exit("tests/dashboards.py: --no-chdb is not allowed with CI=true")
        log("WARNING: --no-chdb: the panels are checked on ClickHouse 18.16 only, not on current ClickHouse")
        chdb_python = None
    if not ensure_prometheus():
        if CI:
            sys.exit("tests/dashboards.py: Debian's prometheus is missing and cannot be installed (CI=true: the PromQL panels must run)")
        log("WARNING: no prometheus: the PromQL panels get the metric-name check only")

    workdir = args.workdir or tempfile.mkdtemp(prefix="ruaflow-dashboards-")
    os.makedirs(workdir, exist_ok=True)
    unique = f"dash_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    log(f"workdir {workdir}; database, topic and group {unique}")

    # 2. The data set through the real pipeline.
    data = os.path.join(workdir, "synth")
    shutil.rmtree(data, ignore_errors=True)
    run([binary, "synth", "--out", data, "--seed", "1", "--scenario", "replay-flood", "--days", "35"])
    inputs = os.path.join(data, "reports")
    with open(os.path.join(inputs, "zz-not-a-report.xml"), "w") as f:
        f.write("<feedback><report_metadata>cut short, no report here\n")
    written = write_failure_reports(binary, data, inputs)
    with open(os.path.join(data, "labels.json")) as f:
        replay = next(e for e in json.load(f)["events"] if e["kind"] == "dkim_replay")
    log(f"failure reports written into the data set: {written}")
    embedded_db = os.path.join(workdir, "embedded.db")
    if os.path.exists(embedded_db):
        os.remove(embedded_db)
    ref = embedded_reference(binary, inputs, embedded_db)
    log(f"embedded reference: {ref}")
    fail.check(ref["dead_letters"] >= 1 and ref["alerts"] >= 1, f"the reference run should hold a dead letter and alerts: {ref}")
    fail.check(ref["failure_reports"] == written["stored"] and 0 < ref["failures_from_unknown"] < ref["failure_reports"],
               f"the reference run should hold the failure reports, known and unknown sources among them: {ref}, {written}")

    # What the detector group's enrichment finds: a nameserver and an IP database.
    dns, nameserver, ip_database, source_count = enrichment_world(embedded_db, workdir, venv_python)
    log(f"enrichment: {source_count} sources answered by dnsmasq at {nameserver} and an IP database")

    server = ClickHouse(clickhouse)
    ch = ClickHouse(clickhouse, unique)
    run([binary, "migrate", "--clickhouse", f"{clickhouse}/{unique}"])
    load_started = time.time()

    proc_port, http_port = free_ports(2)
    token = f"t{os.getpid()}{int(time.time())}"
    with open(os.path.join(COMPOSE_DIR, "ruaflow.toml")) as f:
        config = re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{http_port}"', f.read())
    config_path = os.path.join(workdir, "ruaflow.toml")
    with open(config_path, "w") as f:
        f.write(config)
    env = dict(os.environ, RUST_LOG="info", RUAFLOW_HTTP_TOKEN=token)
    proc_log = open(os.path.join(workdir, "process.log"), "w")
    http_log = open(os.path.join(workdir, "ingest-http.log"), "w")
    processor = subprocess.Popen([binary, "process", "--kafka", kafka, "--topic", unique, "--partitions", "4",
                                  "--clickhouse", f"{clickhouse}/{unique}", "--group", unique,
                                  "--listen", f"127.0.0.1:{proc_port}", "--batch-records", "5000", "--batch-ms", "300"],
                                 stdout=proc_log, stderr=proc_log, stdin=subprocess.DEVNULL, env=env)
    ingest_http = subprocess.Popen([binary, "ingest", "http", "--config", config_path, "--kafka", kafka, "--topic", unique,
                                    "--partitions", "4"], stdout=http_log, stderr=http_log, stdin=subprocess.DEVNULL, env=env)
    detect_log_path = os.path.join(workdir, "detect.log")
    detect_log = open(detect_log_path, "w")
    detect_config = os.path.join(workdir, "detect.toml")
    with open(detect_config, "w") as f:
        f.write(config + f'\n[enrich]\nnameservers = ["{nameserver}"]\nipinfo_db = "{ip_database}"\n')
    detector = subprocess.Popen([binary, "detect", "--config", detect_config, "--kafka", kafka, "--topic", unique,
                                 "--partitions", "4", "--clickhouse", f"{clickhouse}/{unique}", "--group", unique + "_detect"],
                                stdout=detect_log, stderr=detect_log, stdin=subprocess.DEVNULL, env=env)
    prometheus, prom_url = None, None
    try:
        wait_for("the processor's /healthz", lambda: http_get(f"http://127.0.0.1:{proc_port}/healthz").strip() == "ok", 90)
        wait_for("ingest http's /healthz", lambda: http_get(f"http://127.0.0.1:{http_port}/healthz").strip() == "ok", 90)
        prometheus, prom_url = start_prometheus(workdir, {"ruaflow-process": f"127.0.0.1:{proc_port}",
                                                          "ruaflow-ingest-http": f"127.0.0.1:{http_port}"})
        if prometheus is not None:
            wait_for("Prometheus to scrape both processes", lambda: scrapes(prom_url) >= 2, 60)
        # The processor is running and Prometheus watching: now the reports arrive.
        run([binary, "ingest", "dir", "--once", "--kafka", kafka, "--topic", unique, "--partitions", "4", inputs])
        want = {k: ref[k] for k in ("reports", "records", "messages", "dead_letters", "failure_reports")}
        wait_for(f"ClickHouse to hold {want}", lambda: clickhouse_totals(ch) == want, 300)
        log(f"loaded through Kafka in {time.time() - load_started:.1f}s: {want}")
        # The detector group has read a digest of every report (one each here, more for a
        # TLS report of several policy domains) and then nothing more for 2 s.
        digests = {"last": -1, "since": time.time()}

        def detector_done():
            with open(detect_log_path) as f:
                handled = sum(int(w[len("digests="):]) for w in f.read().split() if w.startswith("digests="))
            if handled != digests["last"]:
                digests["last"], digests["since"] = handled, time.time()
            return handled >= want["reports"] and time.time() - digests["since"] >= 2

        wait_for("the detector to read every report's digest", detector_done, 300)
        enriched = lambda: int(ch.scalar("SELECT count() FROM sources FINAL WHERE ptr != '' AND asn != 0"))
        wait_for(f"the detector group to enrich the {source_count} sources", lambda: enriched() >= source_count, 180)

        before = scrapes(prom_url) if prom_url else 0
        # A report already stored, again over HTTP (a duplicate), and a request without the token.
        tls = sorted(n for n in os.listdir(inputs) if n.endswith(".json.gz"))
        fail.check(bool(tls), "the synthetic set has no gzipped TLS report to POST")
        with open(os.path.join(inputs, tls[0]), "rb") as f:
            body = f.read()
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/tlsrpt", data=body, method="POST",
                                     headers={"Content-Type": "application/tlsrpt+gzip"})
        with urllib.request.urlopen(req, timeout=60) as r:
            fail.check(r.status == 200, f"POST /v1/tlsrpt answered {r.status}")
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/reports", data=b"x", method="POST"), timeout=30)
            fail.add("POST /v1/reports without a token was accepted")
        except urllib.error.HTTPError as e:
            fail.check(e.code == 401, f"POST /v1/reports without a token answered {e.code}, not 401")
        wait_for("the duplicate report to reach the processor",
                 lambda: "ruaflow_duplicate_reports_total" in http_get(f"http://127.0.0.1:{proc_port}/metrics"), 60)
        fail.check(clickhouse_totals(ch) == want, "a report POSTed again changed the totals")
        if prom_url:
            # rate() needs a few samples after the last change.
            wait_for("Prometheus to hold a few more scrapes", lambda: scrapes(prom_url) >= before + 6, 60)
        metrics_texts = [http_get(f"http://127.0.0.1:{proc_port}/metrics"), http_get(f"http://127.0.0.1:{http_port}/metrics")]
        checked, total = check_prometheus(prom_url, dashboards, metrics_texts, load_started, fail)
        log(f"Prometheus: {total} PromQL targets name known metrics; {checked} ran on Prometheus")
    finally:
        for proc, name in ((ingest_http, "ruaflow ingest http"), (processor, "ruaflow process"),
                           (detector, "ruaflow detect")):
            err = stop(proc, name)
            if err:
                fail.add(f"{err} (log in {workdir})")
        if prometheus:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        dns.terminate()
        dns.wait(timeout=30)

    # 3. Every ClickHouse query, first pass: the tables the pipeline fills.
    days = ch.json("SELECT toString(min(day)) AS lo, toString(max(day)) AS hi FROM reports FINAL")["data"][0]
    utc = datetime.timezone.utc
    report_from = datetime.datetime.strptime(days["lo"], "%Y-%m-%d").replace(tzinfo=utc)
    report_to = datetime.datetime.strptime(days["hi"], "%Y-%m-%d").replace(tzinfo=utc) + datetime.timedelta(seconds=86399)
    stored_from = datetime.datetime.fromtimestamp(load_started - 300, utc)
    stored_to = datetime.datetime.fromtimestamp(time.time() + 60, utc)
    ranges = {d["uid"]: (stored_from, stored_to) if d["uid"] == "ruaflow-pipeline" else (report_from, report_to)
              for d in dashboards.values()}
    log(f"report days {days['lo']} .. {days['hi']}; Pipeline range {stored_from:%H:%M:%S} .. {stored_to:%H:%M:%S} UTC")
    queries = build_queries(dashboards, ch, ranges)
    log(f"{len(queries)} expanded queries ({len({(q.dash, q.what) for q in queries})} distinct targets)")

    def first_pass_may_be_empty(q):
        return bool(q.tables) and q.tables <= ENRICHMENT_ONLY

    allowed = sorted({f"{q.dash} / {q.what} ({', '.join(sorted(q.tables))})" for q in queries if first_pass_may_be_empty(q)})
    log("first pass: allowed to be empty (tables only enrichment fills):\n  " + "\n  ".join(allowed))
    detector = replay_signal_reference(embedded_db)
    t0 = time.time()
    results = run_on_clickhouse(ch, queries, first_pass_may_be_empty, fail)
    cross_checks("ClickHouse 18.16", queries, results, ref, detector, fail)
    model = sender_model(ch)
    status_checks("ClickHouse 18.16", queries, results, model, replay, fail)
    log(f"first pass on ClickHouse 18.16: {len(queries)} queries in {time.time() - t0:.1f}s")
    chdb = None
    if chdb_python:
        chdb = Chdb(chdb_python, workdir, unique)
        t0 = time.time()
        results = run_on_chdb(chdb, queries, first_pass_may_be_empty, fail,
                              schema=schema_statements(), tables=export_tables(ch, workdir, TABLES, "a"))
        cross_checks(f"ClickHouse {chdb.version} (chdb)", queries, results, ref, detector, fail)
        status_checks(f"ClickHouse {chdb.version} (chdb)", queries, results, model, replay, fail)
        log(f"first pass on ClickHouse {chdb.version} (chdb): {len(queries)} queries in {time.time() - t0:.1f}s")

    # 4. Second pass: the embedded pipeline's (enriched) sources; the queries that read
    # them, and the alerts the detector group raised, run again and must all return data.
    # An operator acknowledges the replay alert first (the Alerts table shows it).
    acked = acknowledge_replay(binary, f"{clickhouse}/{unique}", fail)
    again = [q for q in queries if q.tables & (ENRICHMENT_ONLY | {"alerts"})]
    t0 = time.time()
    results = run_on_clickhouse(ch, again, lambda q: False, fail)
    enrichment_checks("ClickHouse 18.16", again, results, acked, fail)
    log(f"second pass on ClickHouse 18.16: {len(again)} queries in {time.time() - t0:.1f}s")
    if chdb:
        t0 = time.time()
        results = run_on_chdb(chdb, again, lambda q: False, fail,
                              tables=export_tables(ch, workdir, ["sources", "source_services", "notices"], "b"))
        enrichment_checks(f"ClickHouse {chdb.version} (chdb)", again, results, acked, fail)
        log(f"second pass on ClickHouse {chdb.version} (chdb): {len(again)} queries in {time.time() - t0:.1f}s")
        ttl_checks(chdb, fail)

    if not args.keep:
        server.run(f"DROP DATABASE IF EXISTS {unique}")
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    engines = "ClickHouse 18.16" + (f" and ClickHouse {chdb.version} (chdb)" if chdb else " only")
    if fail.items:
        sys.exit(f"tests/dashboards.py: {len(fail.items)} failures ({engines}; workdir {workdir})")
    log(f"dashboards: every query of the {panels} panels ran with data on {engines}"
        f"{', the PromQL on Prometheus' if prometheus_binary() else ''}, in {time.time() - started_at:.0f}s")


if __name__ == "__main__":
    main()
