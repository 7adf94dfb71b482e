#!/usr/bin/env python3
"""Whole-process timing of one or more commands, run in turn, for the bench scripts.

    bench/measure.py [-n RUNS] [--warmup W] [--ref NAME] [--json FILE]
                     [--prep NAME=CMD]... [--stdout NAME=FILE]... NAME=CMD...

Each CMD is one command line, split as a shell splits words but run without a shell
(write `sh -c '...'` for a pipe). The commands run in turn, A B C A B C ..., RUNS rounds
(default 5) after W warm-up rounds that are not counted (default 1), so that a drift in
the machine's speed hits them all alike. For each run the figures are the operating
system's own accounting of the finished child (wait4): wall seconds (monotonic clock
around start and reap), CPU seconds (user + system), and peak resident set size as
/usr/bin/time -f %M reports it (the largest process among the command and the
descendants it waited for; floor about 1 MiB). The command is started through
/usr/bin/time, which adds about a millisecond to wall and CPU. Each figure is
printed as median (min-max). The ratio of each command's wall time to the reference's
(--ref, default the first command) is taken round by round and its median printed.

--prep NAME=CMD runs CMD, untimed, before every run of NAME (for example removing the
database a pipeline run creates). stdout goes to /dev/null unless --stdout NAME=FILE
names a file (rewritten on each run). stderr is kept for the last run and its tail is
printed when the command exits non-zero (the exit code is reported, never acted on).
--json FILE writes every run's figures and the summaries.

Only the Python standard library is used.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def parse_pairs(items, what):
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            sys.exit(f"measure.py: {what} must be NAME=VALUE, got {item!r}")
        out[name] = value
    return out


TIME = "/usr/bin/time"


def run_once(argv, stdout_path, stderr_path, rss_path):
    """One run. Wall and CPU come from wait4 on the child; the peak RSS from GNU time's
    %M (the command's own maxrss) when /usr/bin/time exists, because a child forked
    from this Python process inherits its resident size as a floor (maxrss survives
    exec), while /usr/bin/time forks the command from a process of about 1 MiB."""
    wrapped = [TIME, "-f", "%M", "-o", rss_path, "--"] + argv if os.access(TIME, os.X_OK) else argv
    with open(stdout_path or os.devnull, "wb") as out, open(stderr_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    rss_kib = usage.ru_maxrss  # Linux: KiB
    if wrapped is not argv:
        try:
            with open(rss_path) as f:
                lines = [ln for ln in f.read().split("\n") if ln.strip()]
            # GNU time writes "Command exited with non-zero status N" before the figure.
            rss_kib = int(lines[-1])
        except (OSError, ValueError, IndexError):
            pass
    return {
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": rss_kib / 1024.0,
        "exit": code,
    }


def summary(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def fmt(s, digits):
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--ref", help="NAME of the reference command for ratios")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--prep", action="append", default=[], metavar="NAME=CMD")
    ap.add_argument("--stdout", action="append", default=[], metavar="NAME=FILE")
    ap.add_argument("commands", nargs="+", metavar="NAME=CMD")
    args = ap.parse_args()

    commands = parse_pairs(args.commands, "a command")
    names = list(commands)
    preps = parse_pairs(args.prep, "--prep")
    stdouts = parse_pairs(args.stdout, "--stdout")
    ref = args.ref or names[0]
    if ref not in commands:
        sys.exit(f"measure.py: --ref {ref!r} is not one of {names}")
    argvs = {n: shlex.split(c) for n, c in commands.items()}

    work = tempfile.mkdtemp(prefix="measure.")
    runs = {n: [] for n in names}
    for rnd in range(args.warmup + args.runs):
        counted = rnd >= args.warmup
        for n in names:
            if n in preps:
                subprocess.run(shlex.split(preps[n]), check=False)
            r = run_once(argvs[n], stdouts.get(n), os.path.join(work, f"{n}.stderr"),
                         os.path.join(work, "rss"))
            if counted:
                runs[n].append(r)
            tag = f"run {rnd - args.warmup + 1}/{args.runs}" if counted else "warm-up"
            print(f"  {tag:<10} {n:<18} wall {r['wall_s']:8.3f} s  cpu {r['cpu_s']:8.3f} s  "
                  f"peak {r['peak_rss_mib']:8.1f} MiB  exit {r['exit']}", file=sys.stderr, flush=True)

    result = {"runs": args.runs, "warmup": args.warmup, "ref": ref, "commands": {}}
    print(f"{'command':<18} {'wall s: median (min-max)':<28} {'cpu s: median (min-max)':<28} "
          f"{'peak RSS MiB: median (min-max)':<32} {'wall / ' + ref:>14}")
    for n in names:
        rs = runs[n]
        wall = summary([r["wall_s"] for r in rs])
        cpu = summary([r["cpu_s"] for r in rs])
        rss = summary([r["peak_rss_mib"] for r in rs])
        ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(rs, runs[ref]) if b["wall_s"] > 0]
        ratio = summary(ratios) if ratios else None
        exits = sorted({r["exit"] for r in rs})
        result["commands"][n] = {
            "cmd": commands[n], "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss,
            "wall_ratio_to_ref": ratio, "exit_codes": exits, "all": rs,
        }
        shown = f"{ratio['median']:.2f}" if ratio else "-"
        print(f"{n:<18} {fmt(wall, 3):<28} {fmt(cpu, 3):<28} {fmt(rss, 1):<32} {shown:>14}")
        if exits != [0]:
            print(f"  note: {n} exit codes {exits}", file=sys.stderr)
            try:
                with open(os.path.join(work, f"{n}.stderr"), "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-3:]
                for line in tail:
                    print(f"    {line}", file=sys.stderr)
            except OSError:
                pass
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
