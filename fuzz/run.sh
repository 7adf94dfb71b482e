#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after the other, on the
# stack the production threads have (2 MiB: `ulimit -s 2048`, since libFuzzer runs the
# target on the main thread), and writes each run's final stats to logs/TARGET.log.
#
#   fuzz/run.sh [SECONDS] [TARGET…]
#
# unpack and mime are built with -O (no debug assertions): mail-parser 0.11 has a
# `debug_assert!` that fuzzing reaches (see README); the parsers of this project keep
# theirs in the other targets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(dmarc_xml tlsrpt_json unpack mime multipart)
[[ -d corpus ]] || ./seed.sh
mkdir -p logs
declare -A max_len=([dmarc_xml]=65536 [tlsrpt_json]=16384 [unpack]=65536 [mime]=65536 [multipart]=16384)
declare -A dict=([dmarc_xml]=dmarc.dict [tlsrpt_json]=tlsrpt.dict [unpack]=unpack.dict [mime]=unpack.dict [multipart]=unpack.dict)
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    build=()
    case $target in unpack | mime) build=(-O --target-dir target/release-noassert) ;; esac
    echo "== $target for ${seconds}s"
    if (ulimit -s 2048 && cargo +nightly fuzz run "${build[@]}" "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -max_len="${max_len[$target]}" \
        -dict="${dict[$target]}" -print_final_stats=1) >"logs/$target.log" 2>&1; then
        grep -E "^stat::number_of_executed_units|Done [0-9]+ runs" "logs/$target.log" | tail -2
    else
        echo "$target FAILED: see fuzz/logs/$target.log"
        tail -30 "logs/$target.log"
        status=1
    fi
done
exit $status
