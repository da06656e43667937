#!/usr/bin/env bash
# The same shop in two hosting shapes, one after the other in one run (docs/architecture.md,
# "Hosting"): all separate (nats-server, seven services, the gateway) and all co-located (the
# seven services in one shoal-shop process; the saga's calls in process). For each shape, on a
# fresh data directory with `shoal up`:
#   1. checkout at saturation, closed loop (CONNS connections): confirmed checkouts/s and the
#      CPU per confirmed checkout of every process of the shop (/proc/<pid>/stat over the
#      measured window);
#   2. checkout open loop at RATE/s (default: 80 % of the separate shape's saturation, the same
#      for both): saga latency p50/p99 (accepted -> terminal);
#   3. the shop mix (browse=80,cart=15,checkout=5), closed loop: requests/s and the cores the
#      shop used per 10,000 requests/s;
#   4. resident memory of the shop's processes after the runs (nats-server included).
#   bench/hosting.sh [BUILD_DIR]   env: DURATION (s per run, default 15), WARMUP (s, default 3),
#                                  CONNS (default 32), USERS (default 16), RATE, KEEP=1
# Summary lines: bench hosting.<name>: <value> <unit> (<ratio>x all-separate), the co-located
# figure against the separate one; then the same ratios beside Service Weaver's (the online
# boutique at 10,000 QPS: 78 -> 9 cores, median 5.47 -> 0.38 ms).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
src=$(cd "$here/.." && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-15}
warmup=${WARMUP:-3}
conns=${CONNS:-32}
users=${USERS:-16}
hz=$(getconf CLK_TCK)
for b in shoal shoal-proxy shoal-shop shoal-user shoal-product shoal-cart shoal-inventory \
    shoal-order shoal-payment shoal-notification; do
    [ -x "$bin/$b" ] || { echo "hosting.sh: $bin/$b is missing (make build)" >&2; exit 1; }
done
top=$(mktemp -d /tmp/shoal-hosting-XXXXXX)
up_pid=
cleanup() {
    if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $top" >&2; else rm -rf "$top"; fi
}
trap cleanup EXIT

procs() {
    local p
    for p in $(pgrep -P "$up_pid"); do echo "$p $(cat "/proc/$p/comm" 2>/dev/null)"; done
}
cpu_snapshot() { procs | while read -r p n; do echo "$p $n $(bench_cpu_ticks "$p")"; done >"$1"; }
cpu_total() { # A B -> CPU seconds of the shop between the snapshots
    awk -v hz="$hz" 'NR == FNR { a[$1] = $3; next } { t += ($3 - a[$1]) / hz } END { printf "%.3f", t }' "$1" "$2"
}
jget() { python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d.get(k) if isinstance(d, dict) else None
print(0 if d is None else round(d, 2) if isinstance(d, float) else d)' "$1" "$2"; }
settle() {
    local i
    for i in $(seq 1 60); do
        cpu_snapshot "$work/s0"; sleep 1; cpu_snapshot "$work/s1"
        awk -v a="$(cpu_total "$work/s0" "$work/s1")" 'BEGIN { exit !(a < 0.2) }' && return 0
    done
}

# start SHAPE: the shop on fresh ports and data directory, in $work
start() {
    local shape=$1 i
    work="$top/$shape"
    mkdir -p "$work"
    local hosted=
    [ "$shape" = colocated ] && hosted=user,product,cart,inventory,order,payment,notification
    bench_shop_config "$work" "$bin" "$src" "$hosted"
    "$bin/shoal" up --config "$work/local.yaml" >"$work/up.log" 2>&1 &
    up_pid=$!
    for i in $(seq 1 600); do
        grep -q "the shop is ready" "$work/up.log" 2>/dev/null && [ -r "$work/data/admin-credentials" ] && return 0
        sleep 0.2
    done
    echo "hosting.sh: the shop ($shape) did not come up:" >&2; tail -n 30 "$work/up.log" >&2; exit 1
}
stop() { kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true; up_pid=; }

# load NAME ARGS...: shoal load after settle; CPU over the measured window in NAME.cpu
load() {
    local name=$1 lp i; shift
    settle
    "$bin/shoal" load --target "http://127.0.0.1:$gw" --admin-credentials "$work/data/admin-credentials" \
        --warmup "${warmup}s" --duration "${duration}s" --users "$users" --json "$@" >"$work/$name.json" 2>"$work/$name.err" &
    lp=$!
    for i in $(seq 1 3000); do
        grep -q 'running' "$work/$name.err" 2>/dev/null && break
        kill -0 "$lp" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$warmup"; cpu_snapshot "$work/$name.c0"; sleep "$duration"; cpu_snapshot "$work/$name.c1"
    if ! wait "$lp"; then echo "hosting.sh: shoal load $name failed:" >&2; tail -n 20 "$work/$name.err" >&2; exit 1; fi
    cpu_total "$work/$name.c0" "$work/$name.c1" >"$work/$name.cpu"
}

# run SHAPE: fills sat_<shape>, cpu_<shape> (ms per confirmed checkout), p50_, p99_, rps_,
# cores_ (per 10,000 requests/s), rss_ (MB)
run() {
    local shape=$1 sat confirmed
    start "$shape"
    load sat --scenario checkout --conns "$conns"
    sat=$(jget "$work/sat.json" checkout.confirmed_per_s)
    confirmed=$(jget "$work/sat.json" checkout.confirmed)
    eval "sat_$shape=$sat"
    eval "cpu_$shape=$(awk -v c="$(cat "$work/sat.cpu")" -v n="$confirmed" 'BEGIN { printf "%.3f", (n > 0 ? c * 1000 / n : 0) }')"
    [ -n "$rate" ] || rate=$(awk -v s="$sat" 'BEGIN { r = s * 0.8; printf "%.0f", r < 1 ? 1 : r }')
    load open --scenario checkout --rate "$rate/s"
    eval "p50_$shape=$(jget "$work/open.json" checkout.saga.p50_ms)"
    eval "p99_$shape=$(jget "$work/open.json" checkout.saga.p99_ms)"
    load mix --scenario mix --conns "$conns"
    local rps cores
    rps=$(jget "$work/mix.json" requests_per_s)
    cores=$(awk -v c="$(cat "$work/mix.cpu")" -v d="$duration" 'BEGIN { printf "%.3f", c / d }')
    eval "rps_$shape=$rps"
    eval "cores_$shape=$(awk -v c="$cores" -v r="$rps" 'BEGIN { printf "%.2f", (r > 0 ? c * 10000 / r : 0) }')"
    eval "rss_$shape=$(procs | while read -r p n; do awk '/^VmRSS:/ {print $2}' "/proc/$p/status"; done | awk '{ s += $1 } END { printf "%.1f", s / 1024 }')"
    echo "== $shape: saturation $sat/s, CPU $(eval echo \$cpu_$shape) ms/checkout; at $rate/s p50 $(eval echo \$p50_$shape) ms p99 $(eval echo \$p99_$shape) ms; mix $rps/s, $(eval echo \$cores_$shape) cores per 10k/s; RSS $(eval echo \$rss_$shape) MB" >&2
    stop
}

rate=${RATE:-}
run separate
run colocated

peer="all-separate"
echo "hosting.sh: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); runs of ${duration} s after ${warmup} s warm-up; $conns connections; open loop at $rate/s" >&2
bench_line hosting.checkout.saturation "$sat_colocated" "confirmed checkouts/s co-located" "$sat_separate" "$peer"
bench_line hosting.checkout.cpu "$cpu_colocated" "ms CPU per confirmed checkout co-located" "$cpu_separate" "$peer"
bench_line hosting.saga.p50 "$p50_colocated" "ms at ${rate}/s co-located" "$p50_separate" "$peer"
bench_line hosting.saga.p99 "$p99_colocated" "ms at ${rate}/s co-located" "$p99_separate" "$peer"
bench_line hosting.mix "$rps_colocated" "requests/s co-located (browse=80,cart=15,checkout=5)" "$rps_separate" "$peer"
bench_line hosting.mix.cores "$cores_colocated" "cores per 10,000 requests/s co-located" "$cores_separate" "$peer"
bench_line hosting.rss "$rss_colocated" "MB co-located, every process after the runs" "$rss_separate" "$peer"
echo "Service Weaver's online boutique, co-located against separate: cores $(awk 'BEGIN { printf "%.2f", 9 / 78 }')x (78 -> 9), median latency $(awk 'BEGIN { printf "%.2f", 0.38 / 5.47 }')x (5.47 -> 0.38 ms)" >&2
bench_line hosting.weaver.cores "$(awk -v a="$cores_colocated" -v b="$cores_separate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" "x cores per request, co-located / separate" "$(awk 'BEGIN { printf "%.4f", 9 / 78 }')" "Service Weaver's 78 -> 9"
bench_line hosting.weaver.p50 "$(awk -v a="$p50_colocated" -v b="$p50_separate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" "x median latency, co-located / separate" "$(awk 'BEGIN { printf "%.4f", 0.38 / 5.47 }')" "Service Weaver's 5.47 -> 0.38 ms"
