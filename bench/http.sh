#!/usr/bin/env bash
# HTTP server throughput: shoal-hello GET /hello against nginx returning the
# same fixed body, one worker each, the same wrk load in the same run.
#   bench/http.sh [BUILD_DIR]     env: DURATION (s, default 10), CONNS (default 50)
# Ends with one summary line per figure: bench <name>: <value> <unit> (<ratio>x nginx)
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

sport=$(bench_free_port)
SHOAL_LOG__LEVEL=error "$bin/shoal-hello" --port "$sport" --workers 1 2>"$work/hello.log" &
pids+=($!)

nport=$(bench_free_port)
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        location = /hello { default_type application/json; return 200 '{"message":"hello"}'; }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx.error.log" &
pids+=($!)

bench_wait_port "$sport"
bench_wait_port "$nport"
curl -sf "http://127.0.0.1:$sport/hello" >/dev/null
curl -sf "http://127.0.0.1:$nport/hello" >/dev/null

run() { wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$1/hello" | tee -a "$work/wrk.txt" | bench_wrk_parse; }
# Warm both, then measure each.
wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$sport/hello" >/dev/null
wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$nport/hello" >/dev/null
read -r s_rps s_p50 s_p99 < <(run "$sport")
read -r n_rps n_p50 n_p99 < <(run "$nport")

echo "wrk -t1 -c$conns -d${duration}s, one worker each, GET /hello (19-byte JSON body)"
printf '%-12s %12s %10s %10s\n' server req/s p50_ms p99_ms
printf '%-12s %12s %10s %10s\n' shoal-hello "$s_rps" "$s_p50" "$s_p99"
printf '%-12s %12s %10s %10s\n' nginx "$n_rps" "$n_p50" "$n_p99"
bench_line http.rps "$s_rps" req/s "$n_rps" nginx
bench_line http.p50 "$s_p50" ms "$n_p50" nginx
bench_line http.p99 "$s_p99" ms "$n_p99" nginx
