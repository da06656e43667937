#!/usr/bin/env bash
# Event store appends vs the raw commit rate of the same database, same run:
# SQLite with synchronous=NORMAL and FULL (files in a temporary directory)
# and PostgreSQL 15 (a throwaway cluster started here with the server's
# default durability: fsync on, synchronous_commit on). Usage: bench/store.sh [BUILD]
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/bin/bench_store
[ -x "$bin" ] || { echo "store.sh: $bin not built (make build)" >&2; exit 1; }
secs=${BENCH_SECONDS:-2}
tmp=$(mktemp -d /tmp/shoal-bench-XXXXXX)
pgdir=$tmp/pg
trap '"$here/scripts/pg-fixture.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
"$bin" sqlite-normal "sqlite:$tmp/normal.db" normal "$secs"
"$bin" sqlite-full "sqlite:$tmp/full.db" full "$secs"
PG_FIXTURE_OPTS="" "$here/scripts/pg-fixture.sh" start "$pgdir" >/dev/null
"$bin" postgres "$(cat "$pgdir/url")" normal "$secs"
