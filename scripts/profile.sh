#!/usr/bin/env bash
# Instructions per confirmed checkout, per process, with callgrind (a profiling tool, not one
# of `make bench`'s side-by-side figures): the whole shop as
# bench/shop.sh starts it (`shoal up` on a fresh data directory, every process real), one
# process (PROC: order, payment, inventory, gateway, ...) run under `valgrind --tool=callgrind`,
# and a closed-loop `shoal load --scenario checkout` against it. Callgrind's counters are zeroed
# when the load's measured run starts and dumped once the shop has settled after it (so its
# relays, inboxes and the notification fan-out are counted), then divided by the checkouts the
# load saw confirmed. Callgrind counts instructions, so the figure does not depend on how busy
# the machine is (the run's duration and throughput do).
#   scripts/profile.sh PROC [BUILD_DIR]   env: DURATION (s, default 30), CONNS (default 4),
#                                       USERS (default 4), OUT (directory for callgrind.out,
#                                       default: a new one in /tmp, kept)
# Prints "bench profile.<proc>: <Ir per checkout> instructions per confirmed checkout" and the
# file to read with callgrind_annotate.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../bench/lib.sh"
src=$(cd "$here/.." && pwd)
proc=${1:?usage: scripts/profile.sh PROC [BUILD_DIR]}
build=${2:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-30}
conns=${CONNS:-4}
users=${USERS:-4}
out=${OUT:-$(mktemp -d /tmp/shoal-profile-XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$bin/shoal" ] || { echo "profile.sh: $bin/shoal is missing (make build)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is missing" >&2; exit 1; }
work=$(mktemp -d /tmp/shoal-prof-shop-XXXXXX)
up_pid=
cleanup() {
    if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A bin directory where shoal-PROC runs under callgrind and everything else is the build's.
mkdir -p "$work/bin"
for f in "$bin"/shoal*; do ln -s "$f" "$work/bin/$(basename "$f")"; done
target=shoal-$proc
[ "$proc" = gateway ] && target=shoal-proxy
[ -x "$bin/$target" ] || { echo "profile.sh: $bin/$target is missing" >&2; exit 1; }
rm "$work/bin/$target"
cat >"$work/bin/$target" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.out.$proc.%p "$bin/$target" "\$@"
WRAP
chmod +x "$work/bin/$target"

bench_shop_config "$work" "$work/bin" "$src"
"$bin/shoal" up --config "$work/local.yaml" >"$work/up.log" 2>&1 &
up_pid=$!
ready=0
for i in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$gw/readyz" 2>/dev/null &&
        [ -r "$work/data/admin-credentials" ]; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "profile.sh: the shop did not come up:" >&2; tail -n 30 "$work/up.log" >&2; exit 1; }
sleep 3
vpid=$(pgrep -P "$up_pid" -f "callgrind" | head -n 1)
[ -n "$vpid" ] || { echo "profile.sh: no process under callgrind" >&2; exit 1; }

# settle: until the shop (every child of shoal up, callgrind's idle timers included) uses under
# half a core, at most 30 rounds
ticks() { local p t=0; for p in $(pgrep -P "$up_pid"); do t=$((t + $(bench_cpu_ticks "$p"))); done; echo "$t"; }
settle() {
    local i a b hz
    hz=$(getconf CLK_TCK)
    for i in $(seq 1 30); do
        a=$(ticks); sleep 1; b=$(ticks)
        [ $((b - a)) -lt $((hz / 2)) ] && return 0
    done
    echo "profile.sh: the shop did not settle; going on" >&2
}

settle
"$bin/shoal" load --target "http://127.0.0.1:$gw" --admin-credentials "$work/data/admin-credentials" \
    --scenario checkout --conns "$conns" --users "$users" --warmup 0s --duration "${duration}s" \
    --json >"$out/load.json" 2>"$out/load.err" &
lp=$!
for i in $(seq 1 6000); do
    grep -q 'running' "$out/load.err" 2>/dev/null && break
    kill -0 "$lp" 2>/dev/null || break
    sleep 0.1
done
callgrind_control -z "$vpid" >/dev/null
wait "$lp" || { echo "profile.sh: shoal load failed:" >&2; tail -n 20 "$out/load.err" >&2; exit 1; }
settle
callgrind_control -d "measured" "$vpid" >/dev/null
sleep 2
confirmed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkout"]["confirmed"])' "$out/load.json")
file=$(ls -t "$out"/callgrind.out."$proc".* | head -n 1)
ir=$(awk '/^summary:/ { print $2 }' "$file")
echo "profile.sh: $proc under callgrind, $confirmed checkouts confirmed in ${duration} s ($conns connections); $file" >&2
per=$(awk -v i="$ir" -v n="$confirmed" 'BEGIN { printf "%.0f", (n > 0 ? i / n : 0) }')
echo "bench profile.$proc: $per instructions per confirmed checkout ($ir over $confirmed)"
echo "callgrind_annotate --inclusive=no $file | head -n 40"
