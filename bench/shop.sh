#!/usr/bin/env bash
# The whole shop under `shoal load`: `shoal up` on a fresh data directory (every process real:
# nats-server, the seven services, the gateway; SQLite), then
#   1. checkout at saturation, closed loop (CONNS connections): confirmed checkouts/s, and the
#      CPU per confirmed checkout of every process (from /proc/<pid>/stat over the measured
#      window);
#   2. checkout open loop at 80 % of that rate: saga latency p50/p99 (accepted -> terminal);
#   3. checkout open loop at 2x that rate: the share shed (503), the admitted orders' saga p99,
#      and whether any order stayed pending;
#   4. the shop mix (browse=80,cart=15,checkout=5), closed loop: requests/s and the cores the
#      shop used per 10,000 requests/s;
#   5. resident memory of every process idle (after start) and after the runs.
# The gateway's per-client and register/login rate limits are raised (a load generator is one
# client); everything else is config/gateway.yaml and config/local.yaml's shop.
#   bench/shop.sh [BUILD_DIR]   env: DURATION (s measured per run, default 20), WARMUP (s,
#                               default 3), CONNS (default 64), USERS (accounts per run,
#                               default 16), KEEP=1 keeps the directory, SAT_ONLY=1 stops
#                               after step 1
# In closed loop each connection waits for its order's terminal status before the next
# checkout, so CONNS is also the number of sagas in flight: raise it until the saturation
# figure stops growing.
# Summary lines: bench shop.<name>: <value> <unit> (<ratio>x <peer>), where the peer is the
# target issue 19 sets or its "before" figure, named on each line.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
src=$(cd "$here/.." && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-20}
warmup=${WARMUP:-3}
conns=${CONNS:-64}
users=${USERS:-16}
hz=$(getconf CLK_TCK)
for b in shoal shoal-proxy shoal-user shoal-product shoal-cart shoal-inventory shoal-order \
    shoal-payment shoal-notification; do
    [ -x "$bin/$b" ] || { echo "shop.sh: $bin/$b is missing (make build)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/shoal-shop-XXXXXX)
up_pid=
cleanup() {
    if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- the shop ----------------------------------------------------------------------------
bench_shop_config "$work" "$bin" "$src"
"$bin/shoal" up --config "$work/local.yaml" >"$work/up.log" 2>&1 &
up_pid=$!
ready=0
for i in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$gw/readyz" 2>/dev/null &&
        [ -r "$work/data/admin-credentials" ]; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "shop.sh: the shop did not come up:" >&2; tail -n 30 "$work/up.log" >&2; exit 1; }
sleep 2 # the catalogue's demo products settle

# pid name, one line per process of the shop (the children of `shoal up`)
procs() {
    local p
    for p in $(pgrep -P "$up_pid"); do echo "$p $(cat "/proc/$p/comm" 2>/dev/null)"; done
}
# cpu_snapshot FILE: "pid name ticks" per process
cpu_snapshot() { procs | while read -r p n; do echo "$p $n $(bench_cpu_ticks "$p")"; done >"$1"; }
# rss_snapshot FILE: "pid name kB" per process (VmRSS), and "pid name kB" of PSS (shared pages
# divided among the processes that map them: the libraries every process of the shop loads are
# counted once in the sum) into FILE.pss
rss_snapshot() {
    procs | while read -r p n; do
        echo "$p $n $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")"
    done >"$1"
    procs | while read -r p n; do
        echo "$p $n $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)"
    done >"$1.pss"
}
# cpu_delta A B: "name seconds" per process, then "total seconds"
cpu_delta() {
    awk -v hz="$hz" 'NR == FNR { a[$1] = $3; next }
        { d = ($3 - a[$1]) / hz; t += d; printf "%s %.3f\n", $2, d } END { printf "total %.3f\n", t }' "$1" "$2"
}
jget() { python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d.get(k) if isinstance(d, dict) else None
print(0 if d is None else round(d, 2) if isinstance(d, float) else d)' "$1" "$2"; }

# settle: waits (at most 60 s) until the shop uses less than a fifth of a core, so that one run's
# backlog (relays, notifications) does not land in the next
settle() {
    local i a b
    for i in $(seq 1 60); do
        cpu_snapshot "$work/settle0"; sleep 1; cpu_snapshot "$work/settle1"
        a=$(cpu_delta "$work/settle0" "$work/settle1" | awk '$1 == "total" { print $2 }')
        awk -v a="$a" 'BEGIN { exit !(a < 0.2) }' && return 0
    done
    echo "shop.sh: the shop did not settle in 60 s; going on" >&2
}

# load NAME ARGS...: runs shoal load (after settle), CPU sampled over its measured window (after the set-up
# and the warm-up) into $work/NAME.cpu0 / .cpu1; its JSON in $work/NAME.json
load() {
    local name=$1; shift
    settle
    "$bin/shoal" load --target "http://127.0.0.1:$gw" --admin-credentials "$work/data/admin-credentials" \
        --warmup "${warmup}s" --duration "${duration}s" --users "$users" --json "$@" >"$work/$name.json" 2>"$work/$name.err" &
    local lp=$! i
    for i in $(seq 1 3000); do
        grep -q 'running' "$work/$name.err" 2>/dev/null && break
        kill -0 "$lp" 2>/dev/null || break # the set-up failed: reported below
        sleep 0.1
    done
    sleep "$warmup"
    cpu_snapshot "$work/$name.cpu0"
    sleep "$duration"
    cpu_snapshot "$work/$name.cpu1"
    if ! wait "$lp"; then echo "shop.sh: shoal load $name failed:" >&2; tail -n 20 "$work/$name.err" >&2; exit 1; fi
    echo "== $name: shoal load $*" >&2
    sed -n '/^shoal load run/,$p' "$work/$name.err" >&2
}

rss_snapshot "$work/rss.idle"

# ---- 1. saturation -----------------------------------------------------------------------------
load sat --scenario checkout --conns "$conns"
sat=$(jget "$work/sat.json" checkout.confirmed_per_s)
confirmed=$(jget "$work/sat.json" checkout.confirmed)
cpu_delta "$work/sat.cpu0" "$work/sat.cpu1" >"$work/sat.cpu"
echo "CPU per confirmed checkout, by process (ms, over the measured $duration s, $confirmed confirmed):" >&2
awk -v n="$confirmed" '{ printf "  %-20s %8.3f\n", $1, (n > 0 ? $2 * 1000 / n : 0) }' "$work/sat.cpu" >&2
cpu_total=$(awk -v n="$confirmed" '$1 == "total" { printf "%.3f", (n > 0 ? $2 * 1000 / n : 0) }' "$work/sat.cpu")
if [ "${SAT_ONLY:-0}" = 1 ]; then # step 1 only: the CPU per checkout, for before/after comparisons
    echo "shop.sh: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); ${duration} s after ${warmup} s warm-up; $conns connections" >&2
    bench_line shop.checkout.saturation "$sat" "confirmed checkouts/s" 1000 "the 1,000/s target"
    bench_line shop.checkout.cpu "$cpu_total" "ms CPU per confirmed checkout, all processes" 7.4 "the 7.4 ms before this change"
    exit 0
fi

# ---- 2. 80 % and 3. 2x, open loop ----------------------------------------------------------
r80=$(awk -v s="$sat" 'BEGIN { r = s * 0.8; printf "%.0f", r < 1 ? 1 : r }')
r200=$(awk -v s="$sat" 'BEGIN { r = s * 2; printf "%.0f", r < 1 ? 1 : r }')
load p80 --scenario checkout --rate "$r80/s"
load p200 --scenario checkout --rate "$r200/s"
p50_80=$(jget "$work/p80.json" checkout.saga.p50_ms)
p99_80=$(jget "$work/p80.json" checkout.saga.p99_ms)
p99_200=$(jget "$work/p200.json" checkout.saga.p99_ms)
started=$(jget "$work/p200.json" checkout.started)
shed=$(jget "$work/p200.json" checkout.shed)
shed_pct=$(awk -v s="$shed" -v n="$started" 'BEGIN { printf "%.1f", (n > 0 ? 100 * s / n : 0) }')
pending=$(( $(jget "$work/p80.json" checkout.pending_at_end) + $(jget "$work/p200.json" checkout.pending_at_end) ))
accepted=$(( $(jget "$work/p80.json" checkout.accepted) + $(jget "$work/p200.json" checkout.accepted) ))

# ---- 4. the shop mix -----------------------------------------------------------------------------
load mix --scenario mix --conns "$conns"
rps=$(jget "$work/mix.json" requests_per_s)
cpu_delta "$work/mix.cpu0" "$work/mix.cpu1" >"$work/mix.cpu"
cores=$(awk -v d="$duration" '$1 == "total" { printf "%.3f", $2 / d }' "$work/mix.cpu")
per10k=$(awk -v c="$cores" -v r="$rps" 'BEGIN { printf "%.2f", (r > 0 ? c * 10000 / r : 0) }')

# ---- 5. memory ------------------------------------------------------------------------------------
rss_snapshot "$work/rss.after"
echo "resident memory by process (MB): idle after start, after the runs" >&2
awk 'NR == FNR { a[$1] = $3; next } { printf "  %-20s %8.1f %8.1f\n", $2, a[$1] / 1024, $3 / 1024 }' \
    "$work/rss.idle" "$work/rss.after" >&2
rss_idle=$(awk '$2 != "nats-server" { s += $3 } END { printf "%.1f", s / 1024 }' "$work/rss.idle")
rss_after=$(awk '{ s += $3 } END { printf "%.1f", s / 1024 }' "$work/rss.after")
rss_idle_all=$(awk '{ s += $3 } END { printf "%.1f", s / 1024 }' "$work/rss.idle")
pss_idle=$(awk '$2 != "nats-server" { s += $3 } END { printf "%.1f", s / 1024 }' "$work/rss.idle.pss")

echo "shop.sh: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); runs of ${duration} s after ${warmup} s warm-up; $conns connections" >&2
bench_line shop.checkout.saturation "$sat" "confirmed checkouts/s" 1000 "the 1,000/s target"
bench_line shop.checkout.cpu "$cpu_total" "ms CPU per confirmed checkout, all processes" 7.4 "the 7.4 ms before this change"
bench_line shop.saga.p50.80pct "$p50_80" "ms at ${r80}/s" 3100 "the 3.1 s before this change"
bench_line shop.saga.p99.80pct "$p99_80" "ms at ${r80}/s" 50 "the 50 ms target"
bench_line shop.saga.p99.2x "$p99_200" "ms admitted at ${r200}/s" "$p99_80" "the 80 % figure, target <= 2x"
bench_line shop.shed.2x "$shed_pct" "% of checkouts shed at ${r200}/s" 50 "the excess offered, 50 %"
bench_line shop.pending "$pending" "orders still pending after the open-loop runs (target 0)" "$accepted" "the orders accepted"
bench_line shop.mix "$rps" "requests/s (browse=80,cart=15,checkout=5)" 10000 "10,000 requests/s"
bench_line shop.mix.cores "$per10k" "cores per 10,000 requests/s" 9 "the Service Weaver paper's 9 cores"
bench_line shop.rss.idle "$rss_idle" "MB idle, seven services and the gateway" 64 "the 64 MB target"
bench_line shop.pss.idle "$pss_idle" "MB PSS idle, seven services and the gateway" 64 "the 64 MB target"
bench_line shop.rss.after "$rss_after" "MB after the runs, every process" "$rss_idle_all" "idle"
