#!/usr/bin/env bash
# End-to-end event throughput and publish→handled latency, same run, same
# machine: the full outbox (SQLite) → relay → JetStream → runner + inbox
# (SQLite) path, unordered and ordered (per-subject partitions), against raw
# JetStream publish/consume through the same client (nats.c) and against
# Redis 7 Streams (XADD + XREADGROUP + XACK, appendonly yes, appendfsync
# everysec). Each gets a fresh server. Every path carries the same bytes per
# event: the ~290-byte CloudEvents envelope the outbox writes around ~75 bytes
# of data (bench/bus_bench.c builds the peers' payloads with the outbox's own
# envelope writer). Raw JetStream runs twice: on one subject (the reference peer)
# and on the bus's subject layout (8 partition subjects per topic, consumer
# filter T.p.*), which costs nats-server 2.9 about a third more CPU to
# consume; the pipeline's ratio to the second is its own overhead. N events
# (BENCH_EVENTS, default 100000), ROUNDS (default 5) rounds that run every
# target back to back; each figure is a target's median round, each ratio the
# median of the per-round ratios. Each target's CPU time per event (the bench
# process's, every thread, from getrusage; the broker's, from /proc over the
# run) says what an event costs the machine, which the 2 cores' drift from
# minute to minute moves far less than it moves events/s.
# Usage: bench/bus.sh [BUILD]
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/lib.sh"
bin=$build/bin/bench_bus
[ -x "$bin" ] || { echo "bus.sh: $bin not built (make build)" >&2; exit 1; }
n=${BENCH_EVENTS:-100000}
rounds=${ROUNDS:-5}
tmp=$(mktemp -d /tmp/shoal-bench-bus-XXXXXX)
redis_pid=""
cleanup() {
    "$here/scripts/nats-fixture.sh" stop "$tmp/nats" >/dev/null 2>&1 || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fresh_nats() {
    "$here/scripts/nats-fixture.sh" stop "$tmp/nats" >/dev/null 2>&1 || true
    "$here/scripts/nats-fixture.sh" start "$tmp/nats" >/dev/null
    cat "$tmp/nats/url"
}

rport=$(bench_free_port)
mkdir -p "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp/redis" --appendonly yes \
    --appendfsync everysec --save "" >"$tmp/redis/log" 2>&1 &
redis_pid=$!
bench_wait_port "$rport"

# A 2-core machine's speed drifts from minute to minute: every round runs all targets back to
# back (the order rotating), and the ratios are taken within a round, so drift cancels.
R=$tmp/rounds
hz=$(getconf CLK_TCK)
: >"$R"
# Prints the bench's line plus the broker's CPU time per event (us; from /proc, over the run).
run_target() {
    local url="" spid s0 out
    case $1 in
    red) spid=$redis_pid ;;
    *) url=$(fresh_nats); spid=$(cat "$tmp/nats/pid") ;;
    esac
    s0=$(bench_cpu_ticks "$spid")
    out=$(run_bench "$1" "$url")
    echo "$out $(awk -v t=$(($(bench_cpu_ticks "$spid") - s0)) -v hz="$hz" -v n="$n" \
        'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}
run_bench() {
    local url=$2
    case $1 in
    raw) "$bin" raw "$url" "$n" ;;
    # Raw JetStream on the bus's subject layout: 8 partition subjects per topic (the bus's
    # default) and a T.p.* consumer, as the pipeline's unordered subscription uses.
    rawp) "$bin" raw "$url" "$n" 8 ;;
    pipe) rm -rf "$tmp/p1" && mkdir -p "$tmp/p1"; "$bin" pipeline "$url" "$n" 1 "$tmp/p1" ;;
    ord) rm -rf "$tmp/p2" && mkdir -p "$tmp/p2"; "$bin" pipeline "$url" "$n" 0 "$tmp/p2" ;;
    red) "$bin" redis "$rport" "$n" ;;
    esac
}
targets=(raw pipe ord red rawp)
for r in $(seq 1 "$rounds"); do
    for t in "${targets[@]:$((r % 5))}" "${targets[@]:0:$((r % 5))}"; do
        read -r _ eps p50 p99 cli srv < <(run_target "$t")
        echo "$r $t $eps $p50 $p99 $cli $srv $(awk -v a="$cli" -v b="$srv" 'BEGIN { printf "%.2f", a + b }')" >>"$R"
    done
done
med() { bench_col "$R" "$1" "$2" | bench_median; }
line() { bench_line_ratio "$1" "$(med "$2" "$3")" "$4" "$(bench_paired "$R" "$2" "$5" "$3")" "$6"; }

echo "events: $n, ~290-byte envelopes (the outbox's, on every path), medians of $rounds rounds; lines: value (ratio x peer)"
echo "per round, pipeline/raw events/s: $(bench_ratios "$R" pipe raw 3)"
echo "per round, pipeline/raw on the bus's subject layout: $(bench_ratios "$R" pipe rawp 3)"
echo "CPU time per event, us (medians; client: the bench process, every thread; broker: nats-server or redis-server):"
printf '  %-28s %8s %8s %8s\n' target client broker total
for t in raw rawp pipe ord red; do
    case $t in raw) d=raw_jetstream ;; rawp) d=raw_jetstream_partitioned ;; pipe) d=pipeline ;;
    ord) d=pipeline_ordered ;; red) d=redis_streams ;; esac
    printf '  %-28s %8s %8s %8s\n' "$d" "$(med "$t" 6)" "$(med "$t" 7)" "$(med "$t" 8)"
done
line bus_pipeline_events_per_s pipe 3 events/s raw raw_jetstream
line bus_pipeline_vs_partitioned_events_per_s pipe 3 events/s rawp raw_jetstream_partitioned
line raw_jetstream_partitioned_events_per_s rawp 3 events/s raw raw_jetstream
line bus_pipeline_ordered_events_per_s ord 3 events/s raw raw_jetstream
line raw_jetstream_events_per_s raw 3 events/s red redis_streams
line redis_streams_events_per_s red 3 events/s raw raw_jetstream
line bus_pipeline_p50 pipe 4 ms raw raw_jetstream
line bus_pipeline_p99 pipe 5 ms raw raw_jetstream
line bus_pipeline_ordered_p50 ord 4 ms raw raw_jetstream
line bus_pipeline_ordered_p99 ord 5 ms raw raw_jetstream
line raw_jetstream_p50 raw 4 ms red redis_streams
line raw_jetstream_p99 raw 5 ms red redis_streams
line redis_streams_p50 red 4 ms raw raw_jetstream
line redis_streams_p99 red 5 ms raw raw_jetstream
line bus_pipeline_cpu_per_event pipe 8 us raw raw_jetstream
line bus_pipeline_vs_partitioned_cpu_per_event pipe 8 us rawp raw_jetstream_partitioned
line bus_pipeline_ordered_cpu_per_event ord 8 us raw raw_jetstream
line raw_jetstream_cpu_per_event raw 8 us red redis_streams
