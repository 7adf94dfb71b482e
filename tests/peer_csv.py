#!/usr/bin/env python3
"""Check that `ruaflow parse --csv` writes parsedmarc's aggregate CSV columns.

    bench/.venv/bin/python tests/peer_csv.py --ruaflow target/debug/ruaflow \\
        [--expect-min-rows N] PATH...

Run with the interpreter of bench/.venv (made by bench/peer-setup). For every
aggregate report file parsedmarc parses (offline, timespans not split: the
settings of bench/parsedmarc_totals.py), it converts the report with
parsedmarc's own `parsed_aggregate_reports_to_csv` and runs
`RUAFLOW parse --csv FILE`, then asserts:

- ruaflow's header begins with parsedmarc's columns, in parsedmarc's order;
- both have the same rows in the same order, and on every row the columns in
  SAME agree exactly.

The other parsedmarc columns are filled differently on purpose (README,
"Export"): parsedmarc derives or normalizes them (sp and adkim defaults, the
org name's base domain, envelope_from taken from SPF, enrichment from its
bundled IP database), while ruaflow writes what the report says or leaves
them empty. Their disagreements are counted and shown, never a failure.
Exits 1 on a disagreement, or when fewer than --expect-min-rows rows were
compared.
"""

import argparse
import collections
import csv
import io
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "bench"))
import parsedmarc_totals as peer  # noqa: E402  (refuses the network, then imports parsedmarc)

# Columns whose meaning and spelling are the same in both tools.
SAME = (
    "org_email",
    "report_id",
    "begin_date",
    "end_date",
    "domain",
    "p",
    "pct",
    "source_ip_address",
    "count",
    "spf_aligned",
    "dkim_aligned",
    "dmarc_aligned",
    "disposition",
    "policy_override_comments",
    "header_from",
    "envelope_to",
    "dkim_domains",
    "spf_domains",
)
# Hostile inputs of the corpus whose header fields the two tools recover
# differently from broken bytes; their rows are still compared on the rest.
BROKEN = {"invalid_xml.xml": ("org_email", "header_from"), "invalid_utf_8.xml": ("header_from",)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ruaflow", required=True)
    ap.add_argument("--expect-min-rows", type=int, default=1, metavar="N")
    ap.add_argument("paths", nargs="+", metavar="PATH")
    args = ap.parse_args()

    failures, other = [], collections.Counter()
    files = rows = 0
    for path in peer.walk(args.paths):
        if peer.is_mbox(path):
            continue
        try:
            parsed = peer.parsedmarc.parse_report_file(path, config=peer.CONFIG)
        except Exception:  # parsedmarc cannot read it: nothing to compare
            continue
        if parsed["report_type"] != "aggregate":
            continue
        text = peer.parsedmarc.parsed_aggregate_reports_to_csv(parsed["report"])
        theirs_reader = csv.DictReader(io.StringIO(text))
        theirs = list(theirs_reader)
        proc = subprocess.run([args.ruaflow, "parse", "--csv", path], capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):
            failures.append(f"{path}: ruaflow exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
            continue
        mine_reader = csv.DictReader(io.StringIO(proc.stdout, newline=""))
        mine = list(mine_reader)
        header = theirs_reader.fieldnames or []
        if (mine_reader.fieldnames or [])[: len(header)] != header:
            failures.append(f"{path}: header {mine_reader.fieldnames} does not begin with {header}")
            continue
        files += 1
        if len(theirs) != len(mine):
            failures.append(f"{path}: {len(theirs)} rows from parsedmarc, {len(mine)} from ruaflow")
            continue
        skip = BROKEN.get(os.path.basename(path), ())
        for n, (t, m) in enumerate(zip(theirs, mine), 1):
            rows += 1
            for column in header:
                if t[column] == m[column]:
                    continue
                if column in SAME and column not in skip:
                    failures.append(f"{path} row {n}: {column} {t[column]!r} vs {m[column]!r}")
                else:
                    other[column] += 1

    print(f"peer_csv: {rows} rows of {files} files compared; columns that must agree: {', '.join(SAME)}")
    if other:
        print("differences by design (parsedmarc derives or enriches them):")
        for column, count in other.most_common():
            print(f"  {column}: {count} rows")
    for failure in failures[:40]:
        print(f"DIFF {failure}")
    if failures:
        sys.exit(f"peer_csv: {len(failures)} disagreement(s)")
    if rows < args.expect_min_rows:
        sys.exit(f"peer_csv: only {rows} rows compared, expected at least {args.expect_min_rows}")


if __name__ == "__main__":
    main()
