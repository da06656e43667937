#!/usr/bin/env bash
# The footprint of every process of the shop, the figures behind the resource requests and
# limits of deploy/k8s (src/cli/k8s.c): `shoal up` on a fresh data directory and fresh loopback
# ports (bench_shop_config: the seven services, the gateway, nats-server; SQLite), then
#   1. idle: resident memory (VmRSS) of each process 3 s after the shop is ready;
#   2. under load: `shoal load --scenario mix` (browse=80,cart=15,checkout=5) closed loop over
#      CONNS connections for DURATION seconds: the CPU each process used over the measured window
#      (cores, from /proc/<pid>/stat) and its peak resident memory (VmHWM) at the end.
#   deploy/footprint.sh [BUILD_DIR]   env: DURATION (default 20), CONNS (default 16)
# Prints one line per process: name, idle RSS MiB, peak RSS MiB, cores under load.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
source "$src/bench/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-20}
conns=${CONNS:-16}
hz=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/shoal-footprint-XXXXXX)
up_pid=
cleanup() {
    if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

bench_shop_config "$work" "$bin" "$src"
"$bin/shoal" up --config "$work/local.yaml" >"$work/up.log" 2>&1 &
up_pid=$!
ready=0
for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$gw/readyz" 2>/dev/null &&
        [ -r "$work/data/admin-credentials" ]; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "footprint.sh: the shop did not come up:" >&2; tail -n 30 "$work/up.log" >&2; exit 1; }
sleep 3

# "pid name" per process of the shop (the children of `shoal up`)
procs() { local p; for p in $(pgrep -P "$up_pid"); do echo "$p $(cat "/proc/$p/comm")"; done; }
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
procs | while read -r p n; do echo "$p $n $(field "$p" VmRSS) $(bench_cpu_ticks "$p")"; done >"$work/idle"

"$bin/shoal" load --target "http://127.0.0.1:$gw" --admin-credentials "$work/data/admin-credentials" \
    --warmup 3s --duration "${duration}s" --users 16 --scenario mix --conns "$conns" --json \
    >"$work/load.json" 2>"$work/load.err" &
lp=$!
for _ in $(seq 1 3000); do
    grep -q running "$work/load.err" 2>/dev/null && break
    kill -0 "$lp" 2>/dev/null || break
    sleep 0.1
done
sleep 3
procs | while read -r p n; do echo "$p $(bench_cpu_ticks "$p")"; done >"$work/cpu0"
sleep "$duration"
procs | while read -r p n; do echo "$p $(bench_cpu_ticks "$p") $(field "$p" VmHWM)"; done >"$work/cpu1"
wait "$lp" || { echo "footprint.sh: shoal load failed:" >&2; tail -n 20 "$work/load.err" >&2; exit 1; }
sed -n '/^shoal load run/,$p' "$work/load.err" >&2
printf '%-20s %10s %10s %8s\n' process idle_MiB peak_MiB cores
awk -v hz="$hz" -v d="$duration" '
    FILENAME ~ /idle$/ { name[$1] = $2; rss[$1] = $3; next }
    FILENAME ~ /cpu0$/ { c0[$1] = $2; next }
    { printf "%-20s %10.1f %10.1f %8.2f\n", name[$1], rss[$1] / 1024, $3 / 1024, ($2 - c0[$1]) / hz / d }
' "$work/idle" "$work/cpu0" "$work/cpu1"
