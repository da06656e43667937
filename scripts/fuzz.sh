#!/usr/bin/env bash
# Runs every libFuzzer target of a SHOAL_FUZZ build for a bounded time each,
# starting from (and adding to a scratch copy of) its corpus in tests/fuzz/corpus.
# Targets run FUZZ_JOBS at a time (default: the number of cores); each target's
# result is printed when it ends, and the status is non-zero if any target failed.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

run_one() {
    local f=$1 name work
    name=$(basename "$f"); name=${name#fuzz_}
    work=$(mktemp -d)
    cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    if ! "$f" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/fuzz/$name-" "$work" 2>"$build/fuzz/$name.log"; then
        { echo "== fuzz $name for ${seconds}s"
          echo "fuzz $name: FAILED (see $build/fuzz/$name.log)"; tail -30 "$build/fuzz/$name.log"; } \
            >"$results/$name.fail"
    else
        { echo "== fuzz $name for ${seconds}s"
          grep -E '^(#[0-9]+ +DONE|Done)' "$build/fuzz/$name.log" | tail -1; } >"$results/$name.ok"
    fi
    rm -rf "$work"
}

running=0
for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    run_one "$f" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

status=0
for r in "$results"/*; do
    [ -e "$r" ] || continue
    cat "$r"
    case $r in *.fail) status=1 ;; esac
done
exit $status
