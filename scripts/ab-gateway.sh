#!/usr/bin/env bash
# A/B of shoal-proxy's CPU cost per request between two builds, for changes too small for
# bench/gateway.sh to resolve (its peers' own cost drifts between runs). One shoal-hello
# upstream (CPU 0), the OLD and the NEW proxy (both on CPU 1), wrk against each in turn for
# ROUNDS rounds of DURATION seconds; CPU time from /proc. Loopback only; stops by itself.
#   scripts/ab-gateway.sh OLD_BUILD NEW_BUILD     env: ROUNDS (5), DURATION (4), CONNS (50)
# Last line: bench gateway_ab.cpu_per_req: <new median> us (<ratio>x old)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/lib.sh"
old=$(cd "${1:?usage: ab-gateway.sh OLD_BUILD NEW_BUILD}/bin" && pwd)
new=$(cd "${2:?usage: ab-gateway.sh OLD_BUILD NEW_BUILD}/bin" && pwd)
rounds=${ROUNDS:-5} duration=${DURATION:-4} conns=${CONNS:-50}
[ "$(nproc)" -ge 2 ] || { echo "ab-gateway.sh: needs 2 CPUs" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

up=$(bench_free_port)
SHOAL_LOG__LEVEL=error taskset -c 0 "$new/shoal-hello" --port "$up" --workers 1 2>"$work/hello.log" &
pids+=($!)
declare -A port pid
for v in old new; do
    port[$v]=$(bench_free_port)
    bench_gateway_yaml "${port[$v]}" "$up" >"$work/$v.yaml"
    bin=$old; [ "$v" = new ] && bin=$new
    SHOAL_IDENTITY__KEY_FILE=/nonexistent taskset -c 1 "$bin/shoal-proxy" --config "$work/$v.yaml" \
        2>"$work/$v.log" &
    pid[$v]=$!
    pids+=(${pid[$v]})
done
for p in "$up" "${port[old]}" "${port[new]}"; do bench_wait_port "$p"; done
for v in old new; do taskset -c 0 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$v]}/hello" >/dev/null; done

for r in $(seq 1 "$rounds"); do
    for v in old new; do
        c0=$(bench_cpu_ticks "${pid[$v]}")
        n=$(taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" "http://127.0.0.1:${port[$v]}/hello" |
            awk '/requests in/ {print $1}')
        c1=$(bench_cpu_ticks "${pid[$v]}")
        us=$(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.2f", c * 1e6 / hz / n }')
        echo "$r $v $us" >>"$work/rounds"
        echo "round $r $v: $n requests, $us us/request"
    done
done
o=$(bench_col "$work/rounds" old 3 | bench_median)
n=$(bench_col "$work/rounds" new 3 | bench_median)
bench_line gateway_ab.cpu_per_req "$n" us "$o" old
