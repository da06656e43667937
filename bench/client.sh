#!/usr/bin/env bash
# HTTP client throughput: the libshoal client through the full policy stack
# vs. the same client with policies off vs. wrk, all against the same
# upstream (shoal-hello, one worker, GET /hello) at the same concurrency, in
# the same run. Each load generator is one thread.
#   bench/client.sh [BUILD_DIR]     env: DURATION (s, default 10), CONNS (default 50)
# Ends with one summary line per figure: bench client.<name>: <value> req/s (<ratio>x wrk)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-10}
conns=${CONNS:-50}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(bench_free_port)
SHOAL_LOG__LEVEL=error "$bin/shoal-hello" --port "$port" --workers 1 2>"$work/hello.log" &
pids+=($!)
bench_wait_port "$port"
curl -sf "http://127.0.0.1:$port/hello" >/dev/null

# Warm up, then measure each generator in turn.
wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/hello" >/dev/null
read -r w_rps _ _ < <(wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/hello" | bench_wrk_parse)
read -r _ _ full_rps full_err < <("$bin/bench_client" full "$port" "$conns" "$duration" /hello)
read -r _ _ off_rps off_err < <("$bin/bench_client" off "$port" "$conns" "$duration" /hello)

echo "one worker upstream (shoal-hello GET /hello), $conns concurrent, ${duration}s each"
printf '%-22s %12s %8s\n' generator req/s errors
printf '%-22s %12s %8s\n' wrk "$w_rps" -
printf '%-22s %12s %8s\n' "client, full policies" "$full_rps" "$full_err"
printf '%-22s %12s %8s\n' "client, policies off" "$off_rps" "$off_err"
bench_line client.policies "$full_rps" req/s "$w_rps" wrk
bench_line client.nopolicies "$off_rps" req/s "$w_rps" wrk
bench_line client.wrk "$w_rps" req/s "$w_rps" wrk
