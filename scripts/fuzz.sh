#!/usr/bin/env bash
# Runs every libFuzzer target of a SHOAL_FUZZ build for a bounded time each,
# starting from (and adding to a scratch copy of) its corpus in tests/fuzz/corpus.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for f in "$build"/fuzz/fuzz_*; do
    name=$(basename "$f"); name=${name#fuzz_}
    work=$(mktemp -d)
    cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    echo "== fuzz $name for ${seconds}s"
    if ! "$f" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/fuzz/$name-" "$work" 2>"$build/fuzz/$name.log"; then
        echo "fuzz $name: FAILED (see $build/fuzz/$name.log)"; tail -30 "$build/fuzz/$name.log"; status=1
    else
        grep -E '^(#[0-9]+ +DONE|Done)' "$build/fuzz/$name.log" | tail -1
    fi
    rm -rf "$work"
done
exit $status
