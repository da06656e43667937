#!/usr/bin/env bash
# Gateway overhead: shoal-proxy vs nginx (proxy_pass, upstream keepalive) vs
# haproxy, one worker each, in front of the same upstream (shoal-hello GET
# /hello, one worker), measured with wrk in the same run, plus the upstream
# hit directly; then resident memory, and the memory of 10,000 idle client
# connections per proxy (a python3 client opens them; ulimit -n is raised).
#   bench/gateway.sh [BUILD_DIR]   env: DURATION (s per run, default 5), CONNS (default 50),
#                                       IDLE (default 10000), ROUNDS (default 6), PIN (default 1)
# With PIN=1 (and 2 CPUs or more) the proxy under test runs alone on the last CPU, and wrk and
# the upstream on the others (taskset): each proxy then gets one whole core of its own, the same
# for all three, instead of whatever the scheduler leaves it next to wrk and the upstream.
# Each proxy's CPU time (user + system, from /proc) over each wrk run, divided by the requests
# it served, is its CPU cost per request: 1 s divided by it is what one worker can serve when
# it has its core to itself, a figure the load generator's own limits cannot cap.
# Summary lines: bench gateway.<name>: <value> <unit> (<ratio>x nginx)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-5}
conns=${CONNS:-50}
idle=${IDLE:-10000}
rounds=${ROUNDS:-6}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" # the hard limit when 65536 is refused
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ncpu=$(nproc)
pin_proxy=() pin_rest=()
if [ "${PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ]; then
    pin_proxy=(taskset -c $((ncpu - 1)))
    pin_rest=(taskset -c 0-$((ncpu - 2)))
fi
up=$(bench_free_port); gw=$(bench_free_port); ng=$(bench_free_port); ha=$(bench_free_port)
SHOAL_LOG__LEVEL=error "${pin_rest[@]}" "$bin/shoal-hello" --port "$up" --workers 1 2>"$work/hello.log" &
up_pid=$!; pids+=($up_pid)

bench_gateway_yaml "$gw" "$up" >"$work/gw.yaml"
SHOAL_IDENTITY__KEY_FILE=/nonexistent "${pin_proxy[@]}" "$bin/shoal-proxy" --config "$work/gw.yaml" 2>"$work/gw.log" &
gw_pid=$!; pids+=($gw_pid)

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
error_log $work/nginx.err error;
pid $work/nginx.pid;
events { worker_connections 20000; }
http {
  access_log off;
  upstream hello { server 127.0.0.1:$up; keepalive 256; }
  server {
    listen 127.0.0.1:$ng;
    location /hello { proxy_pass http://hello; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
"${pin_proxy[@]}" nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx.err" &
ng_pid=$!; pids+=($ng_pid)

# haproxy reserves two descriptors per connection (client + server side) out of `ulimit -n`.
ha_max=$(( ($(ulimit -n) - 100) / 2 ))
cat >"$work/haproxy.cfg" <<HAP
global
  nbthread 1
  fd-hard-limit $(ulimit -n)
  maxconn $ha_max
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:$ha
  default_backend b
backend b
  server s1 127.0.0.1:$up maxconn 256
HAP
"${pin_proxy[@]}" haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.err" &
ha_pid=$!; pids+=($ha_pid)
for p in $up $gw $ng $ha; do bench_wait_port "$p"; done
for p in $up $gw $ng $ha; do curl -sf "http://127.0.0.1:$p/hello" >/dev/null; done

# The nginx worker is a child of the master; measure the worker's memory.
ng_worker=$(pgrep -P "$ng_pid" | head -1); ng_worker=${ng_worker:-$ng_pid}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

declare -A rps p50 p99 cpu
names=(direct shoal nginx haproxy)
declare -A ports=([direct]=$up [shoal]=$gw [nginx]=$ng [haproxy]=$ha)
# Whose CPU each run charges: the proxy's (nginx: its worker); direct: the upstream's.
declare -A cpu_pid=([direct]=$up_pid [shoal]=$gw_pid [nginx]=$ng_worker [haproxy]=$ha_pid)
hz=$(getconf CLK_TCK)
for n in "${names[@]}"; do "${pin_rest[@]}" wrk -t1 -c"$conns" -d2s "http://127.0.0.1:${ports[$n]}/hello" >/dev/null; done
# A 2-core box drifts by ±15% from minute to minute, so one run per target proves little, and
# each target's best round flatters whichever got the fast minutes. Instead: several rounds,
# each running every target back to back (the order rotating), then per target the median
# round, and against nginx the median of the per-round ratios (paired, so drift cancels).
: >"$work/rounds"
for r in $(seq 1 "$rounds"); do
    order=("${names[@]:$((r % 4))}" "${names[@]:0:$((r % 4))}")
    for n in "${order[@]}"; do
        t0=$(bench_cpu_ticks "${cpu_pid[$n]}")
        read -r a b c < <("${pin_rest[@]}" wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:${ports[$n]}/hello" | tee "$work/wrk.out" | bench_wrk_parse)
        t1=$(bench_cpu_ticks "${cpu_pid[$n]}")
        reqs=$(awk '/ requests in / { print $1 }' "$work/wrk.out")
        us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="${reqs:-0}" 'BEGIN { if (q > 0) printf "%.3f", t * 1e6 / hz / q; else print 0 }')
        echo "$r $n $a $b $c $us" >>"$work/rounds"
    done
done
R=$work/rounds
paired() { bench_paired "$R" "$1" "$2" "$3"; }
for n in "${names[@]}"; do
    rps[$n]=$(bench_col "$R" "$n" 3 | bench_median | xargs printf '%.0f')
    p50[$n]=$(bench_col "$R" "$n" 4 | bench_median | xargs printf '%.3f')
    p99[$n]=$(bench_col "$R" "$n" 5 | bench_median | xargs printf '%.3f')
    cpu[$n]=$(bench_col "$R" "$n" 6 | bench_median | xargs printf '%.2f')
done
declare -A rss=([shoal]=$(rss_kb $gw_pid) [nginx]=$(rss_kb "$ng_worker") [haproxy]=$(rss_kb $ha_pid))

# Idle connections: open $idle keep-alive connections (no request), measure the RSS growth.
cat >"$work/idle.py" <<'PY'
import socket, sys, time, os
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.socket(); s.connect(("127.0.0.1", port)); socks.append(s)
open(ready, "w").close()
time.sleep(float(sys.argv[4]))
PY
declare -A per_conn
for n in shoal nginx haproxy; do
    case $n in shoal) pid=$gw_pid;; nginx) pid=$ng_worker;; haproxy) pid=$ha_pid;; esac
    count=$idle
    [ "$n" = haproxy ] && [ "$count" -gt "$ha_max" ] && count=$ha_max
    before=$(rss_kb "$pid")
    rm -f "$work/ready"
    python3 "$work/idle.py" "${ports[$n]}" "$count" "$work/ready" 4 &
    cl=$!
    for i in $(seq 1 600); do [ -f "$work/ready" ] && break; sleep 0.05; done
    sleep 1
    after=$(rss_kb "$pid")
    wait $cl 2>/dev/null || true
    per_conn[$n]=$(awk -v a="$after" -v b="$before" -v n="$count" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
done

pinned="not pinned"
[ ${#pin_proxy[@]} -gt 0 ] && pinned="proxies pinned to CPU $((ncpu - 1)), wrk and upstream to CPUs 0-$((ncpu - 2))"
echo "upstream shoal-hello GET /hello (1 worker); proxies 1 worker each; wrk 1 thread, $conns connections, ${duration}s per run; medians of $rounds rounds; $pinned"
printf '%-10s %10s %9s %9s %12s %12s %10s %14s\n' target req/s p50_ms p99_ms overhead_us cpu_us/req rss_kb idle_B/conn
for n in "${names[@]}"; do
    ov=$(awk -v p="${rps[$n]}" -v d="${rps[direct]}" -v c="$conns" 'BEGIN { if (p > 0 && d > 0) printf "%.1f", (c / p - c / d) * 1e6; else print "-" }')
    printf '%-10s %10s %9s %9s %12s %12s %10s %14s\n' "$n" "${rps[$n]}" "${p50[$n]}" "${p99[$n]}" "$ov" "${cpu[$n]}" "${rss[$n]:--}" "${per_conn[$n]:--}"
done
echo "(cpu_us/req: the proxy's CPU per request; direct: the upstream's)"
echo "per round, shoal/nginx req/s:      $(bench_ratios "$R" shoal nginx 3)"
echo "per round, shoal/nginx p99:        $(bench_ratios "$R" shoal nginx 5)"
echo "per round, shoal/nginx CPU per req: $(bench_ratios "$R" shoal nginx 6)"
bench_line_ratio gateway.rps "${rps[shoal]}" req/s "$(paired shoal nginx 3)" nginx
bench_line_ratio gateway.p50 "${p50[shoal]}" ms "$(paired shoal nginx 4)" nginx
bench_line_ratio gateway.p99 "${p99[shoal]}" ms "$(paired shoal nginx 5)" nginx
bench_line_ratio gateway.cpu_per_req "${cpu[shoal]}" us "$(paired shoal nginx 6)" nginx
# One worker with a core to itself: 1 s of CPU divided by the CPU per request.
cap() { awk -v u="$1" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print 0 }'; }
bench_line_ratio gateway.worker_capacity "$(cap "${cpu[shoal]}")" req/s "$(paired nginx shoal 6)" nginx
bench_line_ratio gateway.haproxy_cpu_per_req "${cpu[haproxy]}" us "$(paired haproxy nginx 6)" nginx
bench_line_ratio gateway.haproxy_rps "${rps[haproxy]}" req/s "$(paired haproxy nginx 3)" nginx
bench_line_ratio gateway.direct_rps "${rps[direct]}" req/s "$(paired direct nginx 3)" nginx
bench_line gateway.rss "${rss[shoal]}" KB "${rss[nginx]}" nginx
bench_line gateway.idle_conn "${per_conn[shoal]}" B/conn "${per_conn[nginx]}" nginx
bench_line gateway.haproxy_idle_conn "${per_conn[haproxy]}" B/conn "${per_conn[nginx]}" nginx
