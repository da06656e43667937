#!/usr/bin/env bash
# Plain HTTP against mTLS keep-alive through the libshoal client on loopback:
# the same server (bench_tls serve, one loop, GET answers "ok") and the same
# client (bench_tls call, one loop, CONNS calls in flight over a keep-alive
# pool), once plain and once with mesh TLS 1.3 and client certificates made
# by `shoal certs`. Prints request rate, p50 and p99, and the handshakes the
# TLS client made (one per pooled connection when keep-alive works).
#   bench/tls.sh [BUILD_DIR]     env: DURATION (s, default 10), CONNS (default 50)
# Ends with one summary line per figure: bench tls.<name>: <value> req/s (<ratio>x plain)
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

"$bin/shoal" certs --dir "$work/mesh" init >/dev/null
"$bin/shoal" certs --dir "$work/mesh" issue bench-server >/dev/null
"$bin/shoal" certs --dir "$work/mesh" issue bench-client >/dev/null

plain_port=$(bench_free_port)
"$bin/bench_tls" serve - "$plain_port" 2>"$work/plain.log" &
pids+=($!)
tls_port=$(bench_free_port)
"$bin/bench_tls" serve "$work/mesh" "$tls_port" 2>"$work/tls.log" &
pids+=($!)
bench_wait_port "$plain_port"
bench_wait_port "$tls_port"

# Warm up, then measure each in turn.
"$bin/bench_tls" call - "$plain_port" "$conns" 1 >/dev/null
"$bin/bench_tls" call "$work/mesh" "$tls_port" "$conns" 1 >/dev/null
read -r _ p_rps p_p50 p_p99 p_err _ < <("$bin/bench_tls" call - "$plain_port" "$conns" "$duration")
read -r _ t_rps t_p50 t_p99 t_err t_hs < <("$bin/bench_tls" call "$work/mesh" "$tls_port" "$conns" "$duration")

echo "one-loop server and one-loop client on loopback, $conns calls in flight, ${duration}s each"
echo "(wall-clock figures: on a shared, loaded machine they are indicative only)"
printf '%-14s %10s %9s %9s %7s %11s\n' mode req/s p50_ms p99_ms errors handshakes
printf '%-14s %10s %9s %9s %7s %11s\n' plain "$p_rps" "$p_p50" "$p_p99" "$p_err" -
printf '%-14s %10s %9s %9s %7s %11s\n' "mTLS 1.3" "$t_rps" "$t_p50" "$t_p99" "$t_err" "$t_hs"
bench_line tls.plain "$p_rps" req/s "$p_rps" plain
bench_line tls.mtls "$t_rps" req/s "$p_rps" plain
