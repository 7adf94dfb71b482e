#!/usr/bin/env python3
"""Per-file report totals as parsedmarc sees them, one JSON object per line.

Run with the interpreter of bench/.venv (made by bench/peer-setup):

    bench/.venv/bin/python bench/parsedmarc_totals.py PATH...

PATH is a file or a directory (walked recursively, in sorted order). Each line
has the same shape as the summary fields of `ruaflow parse --json`, so the two
can be compared file by file (tests/peer_agreement.py):

    {"file", "kind": "dmarc", "org_name", "report_id", "domain", "begin", "end",
     "record_count", "message_count"}
    {"file", "kind": "tlsrpt", "organization_name", "report_id", "policy_count",
     "successful_sessions", "failed_sessions"}
    {"file", "kind": "failure"}
    {"file", "kind": "error", "error"}

parsedmarc runs fully offline: no DNS, no IP database or map downloads (the
bundled IP database is used). Every socket connect and name lookup is also
refused in-process, so a code path that would reach the network fails fast
instead of waiting for a timeout; the number of refused attempts is printed to
stderr and makes the exit status 3.

Differences from parsedmarc's defaults, chosen so the counts mean "what the
report says":
- records of reports spanning more than 24 h are not split into per-day
  pieces (normalize_timespan_threshold_hours is set very high);
- an mbox file yields one line per report it holds; parsedmarc itself drops
  aggregate reports repeated within one mbox (same org and report id).
Everything else is parsedmarc's: org_name is its base-domain form of the
reporter, report_id has `<`, `>` and any `@...` suffix removed, a record it
cannot parse (for example one without a source IP) is not counted, and of an
email only the first report found is returned.
"""

import argparse
import calendar
import dataclasses
import json
import logging
import os
import socket
import sys
import time

# begin/end come back from parsedmarc as local-time strings; with UTC as the
# local zone they convert back to the exact unix seconds of the report.
os.environ["TZ"] = "UTC"
time.tzset()


class NetworkRefused(OSError):
    """Raised in place of any network access while parsing."""


NETWORK_ATTEMPTS = []


def _refuse(what):
    def refuse(*args, **kwargs):
        NETWORK_ATTEMPTS.append(f"{what}{args[:2]!r}")
        raise NetworkRefused(f"network access refused: {what}")

    return refuse


# Installed before parsedmarc (and dnspython, httpx, ...) is imported.
socket.socket.connect = _refuse("connect")
socket.socket.connect_ex = _refuse("connect_ex")
socket.socket.sendto = _refuse("sendto")  # UDP DNS queries never connect()
socket.create_connection = _refuse("create_connection")
socket.getaddrinfo = _refuse("getaddrinfo")
socket.gethostbyname = _refuse("gethostbyname")
socket.gethostbyaddr = _refuse("gethostbyaddr")

try:
    import parsedmarc
    from parsedmarc.config import ParserConfig
    from parsedmarc.utils import is_mbox
except ImportError as exc:
    sys.exit(f"{exc}: run bench/peer-setup, then use bench/.venv/bin/python")

CONFIG = ParserConfig(
    offline=True,
    always_use_local_files=True,
    # Not used while offline; a local address and no retries in case a path
    # ignores `offline`.
    nameservers=["127.0.0.1"],
    dns_timeout=0.1,
    dns_retries=0,
    normalize_timespan_threshold_hours=1e9,
)


def walk(paths):
    """Yield files under each path as given/joined, directories sorted."""
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield path


def unix_seconds(human):
    """'YYYY-MM-DD HH:MM:SS' (UTC, see TZ above) -> unix seconds."""
    return calendar.timegm(time.strptime(human, "%Y-%m-%d %H:%M:%S"))


def summarize(path, report_type, report):
    if report_type == "aggregate":
        meta = report["report_metadata"]
        records = report["records"]
        return {
            "file": path,
            "kind": "dmarc",
            "org_name": meta["org_name"],
            "report_id": meta["report_id"],
            "domain": report["policy_published"]["domain"],
            "begin": unix_seconds(meta["begin_date"]),
            "end": unix_seconds(meta["end_date"]),
            "record_count": len(records),
            "message_count": sum(int(r["count"]) for r in records),
        }
    if report_type == "smtp_tls":
        policies = report["policies"]
        return {
            "file": path,
            "kind": "tlsrpt",
            "organization_name": report["organization_name"],
            "report_id": report["report_id"],
            "policy_count": len(policies),
            "successful_sessions": sum(
                int(p["successful_session_count"]) for p in policies
            ),
            "failed_sessions": sum(int(p["failed_session_count"]) for p in policies),
        }
    if report_type in ("failure", "forensic"):
        return {"file": path, "kind": "failure"}
    raise ValueError(f"unknown parsedmarc report type {report_type!r}")


def error_line(path, exc):
    return {"file": path, "kind": "error", "error": f"{type(exc).__name__}: {exc}"}


def parse_mbox(path):
    # A fresh dedup cache per mbox (a dict serves), so reports seen in other
    # files do not hide reports here.
    config = dataclasses.replace(CONFIG, seen_aggregate_report_ids={})
    results = parsedmarc.get_dmarc_reports_from_mbox(path, config=config)
    lines = [summarize(path, "aggregate", r) for r in results["aggregate_reports"]]
    lines += [summarize(path, "smtp_tls", r) for r in results["smtp_tls_reports"]]
    lines += [summarize(path, "failure", r) for r in results["failure_reports"]]
    if not lines:
        lines = [{"file": path, "kind": "error", "error": "no report in mbox"}]
    return lines


def parse_file(path):
    try:
        if is_mbox(path):
            return parse_mbox(path)
        parsed = parsedmarc.parse_report_file(path, config=CONFIG)
        return [summarize(path, parsed["report_type"], parsed["report"])]
    except Exception as exc:  # any failure of the peer is data for the caller
        return [error_line(path, exc)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="PATH")
    ap.add_argument(
        "--verbose", action="store_true", help="show parsedmarc's warnings on stderr"
    )
    args = ap.parse_args()

    # parsedmarc logs to a NullHandler of its own; --verbose routes its
    # warnings (skipped records, odd values) to stderr.
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    started = time.monotonic()
    files = 0
    for path in walk(args.paths):
        files += 1
        for line in parse_file(path):
            print(json.dumps(line))
    sys.stdout.flush()

    elapsed = time.monotonic() - started
    print(f"parsedmarc_totals: {files} files in {elapsed:.2f} s", file=sys.stderr)
    if NETWORK_ATTEMPTS:
        print(
            f"parsedmarc_totals: refused {len(NETWORK_ATTEMPTS)} network "
            f"attempts, first: {NETWORK_ATTEMPTS[0]}",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
