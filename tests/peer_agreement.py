#!/usr/bin/env python3
"""Check that ruaflow and parsedmarc agree on the totals of every report file.

    tests/peer_agreement.py --ruaflow target/release/ruaflow \\
        --peer-python bench/.venv/bin/python [--expect-min-compared N] PATH...

Runs `RUAFLOW parse --json PATH...` and bench/parsedmarc_totals.py (with the
given interpreter, normally the venv made by bench/peer-setup) on the same
paths, groups both outputs by file (paths compared after os.path.realpath),
and, for every file parsedmarc parsed, asserts that ruaflow found the same
kinds of report and the same totals, summed over all lines of the file:

    dmarc   record_count, message_count
    tlsrpt  policy_count, successful_sessions, failed_sessions
    failure (kind only)

ruaflow "error" lines next to reports of the same file are listed but do not
count against it. Files parsedmarc fails on are listed with what ruaflow made
of them; they are not compared. Exits 1 on any disagreement, when fewer files
than --expect-min-compared (default 1) were compared, or when either tool
could not be run properly. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_SCRIPT = os.path.join(HERE, os.pardir, "bench", "parsedmarc_totals.py")

# Totals compared per kind; they are summed over the lines of one file.
TOTALS = {
    "dmarc": ("record_count", "message_count"),
    "tlsrpt": ("policy_count", "successful_sessions", "failed_sessions"),
    "failure": (),
}
# Shown when they differ, never a failure. org_name and report_id are left
# out: parsedmarc rewrites both (base domain of the org, id cut at '@').
IDENTITY = {"dmarc": ("domain", "begin", "end")}

# Exit code of a Rust panic that reached main.
RUST_PANIC = 101


def run(name, argv):
    """Run one tool; return (JSON objects on stdout, exit code, stderr)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        sys.exit(f"peer_agreement: cannot run {name}: {exc}")
    objects = []
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            sys.exit(f"peer_agreement: {name} line {n} is not JSON ({exc}): {line[:200]}")
        if not isinstance(obj, dict) or "file" not in obj or "kind" not in obj:
            sys.exit(f"peer_agreement: {name} line {n} lacks file or kind: {line[:200]}")
        objects.append(obj)
    return objects, proc.returncode, proc.stderr


def by_file(objects):
    groups = defaultdict(list)
    for obj in objects:
        groups[os.path.realpath(obj["file"])].append(obj)
    return groups


def reports(lines):
    return [line for line in lines if line["kind"] != "error"]


def kinds(lines):
    """Kinds of report in one file, e.g. 'dmarc', 'dmarc+tlsrpt' or 'error'."""
    found = sorted({line["kind"] for line in reports(lines)})
    if not found:
        return "error" if lines else "(no line)"
    return "+".join(found)


def totals(lines):
    """{kind: {field: sum}} over the report lines; a sum is None when a line
    lacks the field or it is not an integer."""
    out = {}
    for kind in sorted({line["kind"] for line in reports(lines)}):
        of_kind = [line for line in lines if line["kind"] == kind]
        out[kind] = {}
        for field in TOTALS.get(kind, ()):
            values = [line.get(field) for line in of_kind]
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            out[kind][field] = sum(values) if ok else None
    return out


def describe(lines):
    """One-line summary of what a tool said about a file."""
    if not reports(lines):
        errors = "; ".join(str(line.get("error")) for line in lines)
        return f"{kinds(lines)}: {errors}" if lines else kinds(lines)
    fields = [f"{f}={v}" for by_field in totals(lines).values() for f, v in by_field.items()]
    return " ".join([kinds(lines)] + fields)


def compare(name, theirs, mine):
    """Return (differences, notes) for a file parsedmarc parsed."""
    diffs, notes = [], []
    if kinds(theirs) != kinds(mine):
        diffs.append(f"kind {kinds(theirs)} vs {kinds(mine)}")
    want, got = totals(theirs), totals(mine)
    for kind, by_field in want.items():
        for field, value in by_field.items():
            other = got.get(kind, {}).get(field)
            if value != other:
                diffs.append(f"{field} {value} vs {other}")
        for field in IDENTITY.get(kind, ()):
            a = sorted({str(l.get(field)) for l in theirs if l["kind"] == kind})
            b = sorted({str(l.get(field)) for l in mine if l["kind"] == kind})
            if b and a != b:
                notes.append(f"{name}: {field} {a} vs {b}")
    if not diffs and len(reports(theirs)) != len(reports(mine)):
        notes.append(
            f"{name}: {len(reports(theirs))} report line(s) from parsedmarc, "
            f"{len(reports(mine))} from ruaflow, same totals"
        )
    errors = [str(l.get("error")) for l in mine if l["kind"] == "error"]
    if errors and reports(mine):
        notes.append(f"{name}: ruaflow also gave error lines: {errors}")
    return diffs, notes


def short(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"


def display_path(path, roots):
    """Path relative to the directory argument it was found under, else as
    short as it gets."""
    for root in roots:
        if path.startswith(root + os.sep):
            return os.path.relpath(path, root)
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ruaflow", required=True, help="path to the ruaflow binary")
    ap.add_argument("--peer-python", required=True, help="python with parsedmarc installed")
    ap.add_argument("--peer-script", default=PEER_SCRIPT, help="default: %(default)s")
    ap.add_argument("--expect-min-compared", type=int, default=1, metavar="N")
    ap.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    args = ap.parse_args()
    for path in args.paths:
        if not os.path.exists(path):
            sys.exit(f"peer_agreement: no such file or directory: {path}")

    problems = []
    ours, our_rc, our_err = run("ruaflow", [args.ruaflow, "parse", "--json", *args.paths])
    peer, peer_rc, peer_err = run("parsedmarc", [args.peer_python, args.peer_script, *args.paths])
    if peer_rc != 0:
        problems.append(f"parsedmarc_totals exited {peer_rc}: {peer_err.strip()[-500:]}")
    # Report lines are data, so ruaflow may exit non-zero when some input held
    # no report; a signal or a panic means it did not get through the inputs.
    if our_rc < 0 or our_rc == RUST_PANIC:
        problems.append(f"ruaflow crashed (exit {our_rc}): {our_err.strip()[-500:]}")
    elif our_rc != 0:
        print(f"note: ruaflow exited {our_rc}")

    ours_by_file, peer_by_file = by_file(ours), by_file(peer)
    roots = [os.path.realpath(p) for p in args.paths if os.path.isdir(p)]

    rows, peer_failed, notes = [], [], []
    disagreed = 0
    for path in sorted(peer_by_file):
        theirs, mine = peer_by_file[path], ours_by_file.get(path, [])
        name = display_path(path, roots)
        if not reports(theirs):
            peer_failed.append((name, describe(theirs), describe(mine)))
            continue
        diffs, file_notes = compare(name, theirs, mine)
        notes += file_notes
        disagreed += bool(diffs)
        verdict = "DIFF " + "; ".join(diffs) if diffs else "ok"
        rows.append((name, describe(theirs), verdict))
    compared = len(rows)

    width = min(64, max([len(r[0]) for r in rows] + [4]))
    detail_width = max([len(r[1]) for r in rows] + [17])
    print(f"{'file':<{width}}  {'parsedmarc':<{detail_width}}  ruaflow agrees")
    for name, detail, verdict in rows:
        print(f"{short(name, width):<{width}}  {detail:<{detail_width}}  {verdict}")

    if peer_failed:
        print(f"\nparsedmarc failed on {len(peer_failed)} file(s), not compared:")
        for name, theirs, mine in peer_failed:
            print(f"  {name}")
            print(f"      parsedmarc: {short(theirs, 160)}")
            print(f"      ruaflow:    {short(mine, 160)}")

    only_ours = sorted(set(ours_by_file) - set(peer_by_file))
    if only_ours:
        print(f"\nfiles only in ruaflow's output ({len(only_ours)}):")
        for path in only_ours:
            print(f"  {display_path(path, roots)}: {describe(ours_by_file[path])}")

    if notes:
        print("\nnotes (not failures):")
        for note in notes:
            print(f"  {note}")

    print(
        f"\ncompared {compared} file(s): {compared - disagreed} agree, "
        f"{disagreed} disagree; parsedmarc failed on {len(peer_failed)}"
    )
    minimum = max(1, args.expect_min_compared)
    if compared < minimum:
        problems.append(f"compared {compared} file(s), expected at least {minimum}")
    if disagreed:
        problems.append(f"{disagreed} file(s) disagree")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
