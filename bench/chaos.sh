#!/usr/bin/env bash
# A longer chaos round on the whole shop (docs/operations.md, "Audit and chaos"): `shoal up` on a
# fresh data directory with free ports, `shoal chaos` with kills, pauses and slowdowns of every
# process under `shoal load` (checkout scenario, open loop), then the audit. Reports the orders
# charged per second of the round (the order service's charge digest count before and after,
# read through the audit, over the round's length), the time from the round's end to a settled
# audit, and the audit's verdict.
# Usage: bench/chaos.sh [BUILD]  (BENCH_CHAOS_SECONDS: 300, BENCH_CHAOS_EVERY: 10s,
#                                 BENCH_CHAOS_RATE: 20/s, BENCH_CHAOS_SEED: random)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
secs=${BENCH_CHAOS_SECONDS:-300}
every=${BENCH_CHAOS_EVERY:-10s}
rate=${BENCH_CHAOS_RATE:-20/s}
seed=${BENCH_CHAOS_SEED:-$RANDOM}
[ -x "$bin/shoal" ] || { echo "chaos.sh: build first (make build)" >&2; exit 1; }
"$bin/shoal" load --help > /dev/null 2>&1 || { echo "chaos.sh: this shoal has no load subcommand" >&2; exit 1; }

tmp=$(mktemp -d /tmp/shoal-chaos-bench-XXXXXX)
up=
cleanup() {
    [ -n "$up" ] && kill "$up" 2>/dev/null && wait "$up" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# The shop on free ports (the gateway's clusters and admin port rewritten to match).
names=(user product cart inventory order payment notification)
declare -A port
sed_args=()
for i in "${!names[@]}"; do
    port[${names[$i]}]=$(bench_free_port)
    sed_args+=(-e "s/127\.0\.0\.1:$((8101 + i))/127.0.0.1:${port[${names[$i]}]}/g")
done
gw=$(bench_free_port)
sed "${sed_args[@]}" -e "s/port: 9901/port: $(bench_free_port)/" \
    -e "s/recovery_timeout_ms: 30000/recovery_timeout_ms: 2000/" \
    "$here/config/gateway.yaml" > "$tmp/gateway.yaml"
{
    echo "data_dir: $tmp/data"
    echo "nats: {port: $(bench_free_port)}"
    echo "services:"
    common='SHOAL_LOG__LEVEL: warn'
    for n in "${names[@]}"; do
        extra=
        case $n in
        user) extra=', SHOAL_USER__BOOTSTRAP_ADMIN: "true"' ;;
        product) extra=', SHOAL_PRODUCT__DEMO: "true"' ;;
        order) extra=", SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:${port[inventory]}\", SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:${port[payment]}\"" ;;
        esac
        calls=
        [ "$n" = order ] && calls=', calls: [inventory, payment]' # its identity keys (docs/auth.md)
        echo "  - {name: $n, port: ${port[$n]}$calls, env: {$common$extra}}"
    done
    echo "  - {name: gateway, port: $gw, config: $tmp/gateway.yaml, env: {SHOAL_LOG__LEVEL: warn}}"
} > "$tmp/local.yaml"
"$bin/shoal" up --config "$tmp/local.yaml" > "$tmp/up.log" 2>&1 &
up=$!
for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$gw/readyz" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$gw/readyz" > /dev/null || { tail -n 30 "$tmp/up.log" >&2; exit 1; }

charged() { # the order service's charge digest count, through the audit
    "$bin/shoal" audit --config "$tmp/local.yaml" --settle 60s --json 2> /dev/null |
        python3 -c 'import json,sys
d = json.load(sys.stdin)
print(next((c["value"]["count"] for c in d["checks"] if c["name"] == "order.charge_digest"), 0))' ||
        echo 0
}
before=$(charged)
set +e
"$bin/shoal" chaos --config "$tmp/local.yaml" --duration "${secs}s" --kill-every "$every" \
    --pause --latency --seed "$seed" --settle 600s \
    --load "--scenario checkout --rate $rate --warmup 0s --duration ${secs}s --quiet" | tee "$tmp/chaos.out"
status=${PIPESTATUS[0]}
set -e
after=$(charged)
settle=$(sed -n 's/.*time to settle and audit: \([0-9.]*\) s after.*/\1/p' "$tmp/chaos.out" | tail -n 1)
faults=$(grep -o 'round over: .*' "$tmp/chaos.out" | sed 's/round over: //')
awk -v a="$after" -v b="$before" -v s="$secs" -v f="$faults" 'BEGIN {
    printf "bench chaos: %.1f orders charged/s over a %d s round (%s)\n", (a - b) / s, s, f }'
echo "bench chaos settle: ${settle} s from the round's end to a settled audit (the load's drain included)"
if [ "$status" -eq 0 ]; then
    echo "bench chaos audit: clean (seed $seed)"
else
    echo "bench chaos audit: FAILED, exit status $status (seed $seed)"
    grep -E 'FAIL|NOT quiet' "$tmp/chaos.out" || true
    exit 1
fi
