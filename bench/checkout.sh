#!/usr/bin/env bash
# Checkout throughput of shoal-order (bench/checkout_bench.c) on SQLite and on
# PostgreSQL, one run: confirmed checkouts per second, p50/p99 from POST
# /orders to `confirmed`, durable commits per checkout, and the ratio of the
# order database's commit load to the raw commit rate of the same database
# measured in the same run by bench_store (SQLite synchronous=NORMAL; a
# throwaway PostgreSQL 15 cluster started here by scripts/pg-fixture.sh with
# the server's default durability, stopped at the end). Then two shoal-order
# instances on one PostgreSQL database (saga leases, docs/sagas.md), the
# driver posting to both and polling either: their aggregate rate against the
# one instance. Participants are FAKES in the driver's process, so the figure
# is shoal-order's own cost: its saga, its database and its outbox, without
# the inventory and payment services or the bus. The driver checks every run
# (every order confirmed, one reservation and one charge each at the fakes)
# and fails the script on a miss.
# Usage: bench/checkout.sh [BUILD]  (BENCH_SECONDS, BENCH_CLIENTS)
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECONDS:-3}
clients=${BENCH_CLIENTS:-8}
drv=$build/bin/bench_checkout
store=$build/bin/bench_store
[ -x "$drv" ] && [ -x "$store" ] || { echo "checkout.sh: build first (make build)" >&2; exit 1; }
bindir=$(cd "$build/bin" && pwd)
tmp=$(mktemp -d /tmp/shoal-checkout-XXXXXX)
pgdir=$tmp/pg
trap '"$here/scripts/pg-fixture.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

# The figure `key` of a driver line (key=value words).
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2; exit}'; }
raw_rate() { "$store" "$1" "$2" normal "$secs" | awk '/raw-commit:/ {print $4; exit}'; }

raw_sqlite=$(raw_rate sqlite-normal "sqlite:$tmp/raw.db")
mkdir "$tmp/sqlite"
# One driver run; on a failed check its line and the misses (stderr) are shown and the script fails.
run() {
    local out rc=0
    out=$("$drv" "$bindir" "$@") || rc=$?
    echo "$out" >&2
    [ "$rc" = 0 ] || { echo "checkout.sh: the run failed (above)" >&2; exit 1; }
    echo "$out"
}
sqlite=$(run "$tmp/sqlite" "$secs" "$clients")

PG_FIXTURE_OPTS="" "$here/scripts/pg-fixture.sh" start "$pgdir" >/dev/null
url=$(cat "$pgdir/url")
base=${url%/*}
psql -qX "$url" -c "CREATE DATABASE raw" -c "CREATE DATABASE checkout1" -c "CREATE DATABASE checkout2"
raw_pg=$(raw_rate postgres "$base/raw")
mkdir "$tmp/pg1" "$tmp/pg2"
pg1=$(run "$tmp/pg1" "$secs" "$clients" "$base/checkout1" 1)
pg2=$(run "$tmp/pg2" "$secs" "$clients" "$base/checkout2" 2)

# One line per figure: rate against the raw commit rate (or, for two instances, one instance),
# latency and commits against SQLite.
summary() { # name line peer_rate peer_label ref_line [raw_rate]
    local name=$1 line=$2 peer=$3 label=$4 ref=$5 raw=${6:-0}
    awk -v name="$name" -v rate="$(field "$line" rate)" -v p50="$(field "$line" p50_ms)" \
        -v p99="$(field "$line" p99_ms)" -v oc="$(field "$line" order_commits)" \
        -v cl="$(field "$line" claims)" -v pc="$(field "$line" participant_commits)" \
        -v n="$(field "$line" confirmed)" -v inst="$(field "$line" instances)" \
        -v peer="$peer" -v raw="$raw" -v label="$label" -v clients="$clients" \
        -v ref_p50="$(field "$ref" p50_ms)" -v ref_c="$(field "$ref" order_commits)" 'BEGIN {
        load = rate * oc
        if (label == "one")
            printf "bench checkout.%s: %.1f confirmed checkouts/s (%.2fx one instance on PostgreSQL, %.1f/s; %d instances on one database, %.0f order commits/s = %.2fx the raw PostgreSQL commit rate; %d orders all confirmed, each reserved and charged once)\n", name, rate, (peer > 0 ? rate / peer : 0), peer, inst, load, (raw > 0 ? load / raw : 0), n
        else
            printf "bench checkout.%s: %.1f confirmed checkouts/s (%.2fx the raw %s commit rate: %.0f order commits/s of %.0f tx/s, bench_store, same run; %d orders all confirmed, each reserved and charged once)\n", name, rate, (peer > 0 ? load / peer : 0), label, load, peer, n
        printf "bench checkout.%s.p50: %.2f ms (%.2fx sqlite; p99 %.2f ms; POST -> confirmed, %d clients)\n", name, p50, (ref_p50 > 0 ? p50 / ref_p50 : 0), p99, clients
        printf "bench checkout.%s.commits: %.2f durable commits per checkout (%.2fx sqlite; %.2f in the order database, of which %.2f lease claim, + %d at the participants)\n", name, oc + pc, (ref_c + pc > 0 ? (oc + pc) / (ref_c + pc) : 0), oc, cl, pc
    }'
}
summary sqlite "$sqlite" "$raw_sqlite" SQLite "$sqlite"
summary pg "$pg1" "$raw_pg" PostgreSQL "$sqlite"
summary pg2 "$pg2" "$(field "$pg1" rate)" one "$sqlite" "$raw_pg"
