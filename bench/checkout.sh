#!/usr/bin/env bash
# Checkout throughput of shoal-order (bench/checkout_bench.c): confirmed
# checkouts per second, p50/p99 from POST /orders to `confirmed`, durable
# commits per checkout, and the ratio of the order database's commit load to
# the raw SQLite commit rate measured in the same run by bench_store (same
# machine, synchronous=NORMAL). Participants are FAKES in the driver's
# process, so the figure is shoal-order's own cost: its saga, its database
# and its outbox, without the inventory and payment services or the bus.
# Usage: bench/checkout.sh [BUILD]  (BENCH_SECONDS, BENCH_CLIENTS)
set -euo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-3}
clients=${BENCH_CLIENTS:-8}
drv=$build/bin/bench_checkout
store=$build/bin/bench_store
[ -x "$drv" ] && [ -x "$store" ] || { echo "checkout.sh: build first (make build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/shoal-checkout-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
raw=$("$store" sqlite-normal "sqlite:$tmp/raw.db" normal "$secs" | awk '/raw-commit:/ {print $4; exit}')
line=$("$drv" "$(cd "$build/bin" && pwd)" "$tmp" "$secs" "$clients")
echo "$line"
echo "$line" | awk -v raw="$raw" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    total = v["order_commits"] + v["participant_commits"]
    load = v["rate"] * v["order_commits"]
    printf "bench checkout: %.1f confirmed checkouts/s, p50 %.2f ms, p99 %.2f ms (POST -> confirmed, %s clients, participants: %s)\n", v["rate"], v["p50_ms"], v["p99_ms"], v["clients"], v["participants"]
    printf "bench checkout commits: %.2f per checkout in the order database + %d at the participants = %.2f durable commits\n", v["order_commits"], v["participant_commits"], total
    printf "bench checkout vs raw: %.0f order commits/s = %.2fx the raw SQLite commit rate (%.0f tx/s, bench_store, same run)\n", load, (raw > 0 ? load / raw : 0), raw
}'
