#!/usr/bin/env bash
# The cost of tracing and span export: three pairs of shoal-proxy (1 worker) in front of
# shoal-hello (1 worker), measured with wrk in the same run:
#   off   no export, sample_ratio 0 (spans are neither recorded nor sent)
#   1pct  export on, sample_ratio 0.01 (errors and slow spans of the other 99 % are still
#         recorded and decided at their end, so every request pays for recording)
#   100pct export on, sample_ratio 1 (every span is exported)
# both through the gateway (GET /hello via the gateway) and to hello directly. The OTLP receiver
# is a small python3 HTTP server that answers 200 to every POST and counts the bytes.
#   bench/telemetry.sh [BUILD_DIR]   env: DURATION (s per run, default 5), CONNS (default 50),
#                                         ROUNDS (default 3)
# CPU per request: the CPU time (user + system, all threads, exporter thread included) of the
# processes that served the run (gateway + hello, or hello alone), divided by the requests.
# The table gives the median and the least CPU per request over the rounds.
# Summary lines: bench telemetry.<name>: <value> <unit> (<ratio>x tracing off), the ratio being
# the median over rounds of the paired (same round) ratios.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-5}
conns=${CONNS:-50}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

rx=$(bench_free_port)
cat >"$work/rx.py" <<'PY'
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        self.rfile.read(n)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/rx.py" "$rx" 2>"$work/rx.log" &
pids+=($!)

modes=(off 1pct 100pct)
declare -A ratio=([off]=0 [1pct]=0.01 [100pct]=1) hp gp hpid gpid
for m in "${modes[@]}"; do
    hp[$m]=$(bench_free_port); gp[$m]=$(bench_free_port)
    env_=(SHOAL_LOG__LEVEL=error SHOAL_TELEMETRY__SAMPLE_RATIO="${ratio[$m]}")
    tele="trace: {sample_ratio: 0}"
    if [ "$m" != off ]; then
        env_+=(SHOAL_TELEMETRY__OTLP_ENDPOINT="http://127.0.0.1:$rx")
        tele="telemetry: {otlp_endpoint: \"http://127.0.0.1:$rx\", sample_ratio: ${ratio[$m]}}"
    fi
    env "${env_[@]}" "$bin/shoal-hello" --port "${hp[$m]}" --workers 1 2>"$work/hello-$m.log" &
    hpid[$m]=$!; pids+=($!)
    cat >"$work/gw-$m.yaml" <<YAML
service: {port: ${gp[$m]}, workers: 1}
http: {max_connections: 20000}
log: {level: error, access_log: false}
$tele
clusters:
  hello: {endpoints: [127.0.0.1:${hp[$m]}], max_connections: 256, max_idle: 256}
routes:
  - {name: hello, match: {path: /hello}, cluster: hello}
YAML
    SHOAL_IDENTITY__KEY_FILE=/nonexistent "$bin/shoal-proxy" --config "$work/gw-$m.yaml" 2>"$work/gw-$m.log" &
    gpid[$m]=$!; pids+=($!)
done
for m in "${modes[@]}"; do bench_wait_port "${hp[$m]}"; bench_wait_port "${gp[$m]}"; done
bench_wait_port "$rx"
for m in "${modes[@]}"; do curl -sf "http://127.0.0.1:${gp[$m]}/hello" >/dev/null; done

hz=$(getconf CLK_TCK)
targets=()
for m in "${modes[@]}"; do targets+=("gw_$m" "hello_$m"); done
port_of() { local m=${1#*_}; if [ "${1%%_*}" = gw ]; then echo "${gp[$m]}"; else echo "${hp[$m]}"; fi; }
ticks_of() {
    local m=${1#*_} t
    t=$(bench_cpu_ticks "${hpid[$m]}")
    [ "${1%%_*}" = gw ] && t=$((t + $(bench_cpu_ticks "${gpid[$m]}")))
    echo "$t"
}
for t in "${targets[@]}"; do wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$(port_of "$t")/hello" >/dev/null; done
: >"$work/rounds"
for r in $(seq 1 "$rounds"); do
    k=$((r % ${#targets[@]}))
    order=("${targets[@]:$k}" "${targets[@]:0:$k}")
    for t in "${order[@]}"; do
        t0=$(ticks_of "$t")
        read -r a b c < <(wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$(port_of "$t")/hello" | tee "$work/wrk.out" | bench_wrk_parse)
        t1=$(ticks_of "$t")
        reqs=$(awk '/ requests in / { print $1 }' "$work/wrk.out")
        us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="${reqs:-0}" 'BEGIN { if (q > 0) printf "%.3f", t * 1e6 / hz / q; else print 0 }')
        echo "$r $t $a $b $c $us" >>"$work/rounds"
    done
done
R=$work/rounds
# Spans counted by the processes themselves (exported and dropped), from /metrics.
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s) == 1 { v += $NF } END { printf "%.0f", v }'; }
echo "gateway 1 worker -> hello 1 worker; wrk 1 thread, $conns connections, ${duration}s per run; medians of $rounds rounds; not pinned; loaded shared machine"
printf '%-14s %10s %9s %9s %12s %12s\n' target req/s p50_ms p99_ms cpu_us/req cpu_min
declare -A rps cpu cmin
for t in "${targets[@]}"; do
    rps[$t]=$(bench_col "$R" "$t" 3 | bench_median | xargs printf '%.0f')
    cpu[$t]=$(bench_col "$R" "$t" 6 | bench_median | xargs printf '%.2f')
    cmin[$t]=$(bench_col "$R" "$t" 6 | sort -g | head -1 | xargs printf '%.2f')
    printf '%-14s %10s %9s %9s %12s %12s\n' "$t" "${rps[$t]}" "$(bench_col "$R" "$t" 4 | bench_median | xargs printf '%.3f')" \
        "$(bench_col "$R" "$t" 5 | bench_median | xargs printf '%.3f')" "${cpu[$t]}" "${cmin[$t]}"
done
# The least CPU per request a mode needed over the rounds: the run least disturbed by the
# machine's other work, compared with tracing off's least.
for m in 1pct 100pct; do
    for side in gw hello; do
        echo "min CPU per req, ${side}_$m/${side}_off: $(awk -v a="${cmin[${side}_$m]}" -v b="${cmin[${side}_off]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    done
done
for m in 1pct 100pct; do
    echo "hello $m: exported $(metric "${hp[$m]}" telemetry_spans_exported_total), dropped $(metric "${hp[$m]}" telemetry_spans_dropped_total)"
done
echo "per round, gw 100pct/off req/s:      $(bench_ratios "$R" gw_100pct gw_off 3)"
echo "per round, gw 100pct/off CPU per req: $(bench_ratios "$R" gw_100pct gw_off 6)"
echo "per round, hello 100pct/off CPU per req: $(bench_ratios "$R" hello_100pct hello_off 6)"
for m in 1pct 100pct; do
    bench_line_ratio "telemetry.gateway_rps_$m" "${rps[gw_$m]}" req/s "$(bench_paired "$R" "gw_$m" gw_off 3)" "tracing off"
    bench_line_ratio "telemetry.gateway_cpu_per_req_$m" "${cpu[gw_$m]}" us "$(bench_paired "$R" "gw_$m" gw_off 6)" "tracing off"
    bench_line_ratio "telemetry.hello_rps_$m" "${rps[hello_$m]}" req/s "$(bench_paired "$R" "hello_$m" hello_off 3)" "tracing off"
    bench_line_ratio "telemetry.hello_cpu_per_req_$m" "${cpu[hello_$m]}" us "$(bench_paired "$R" "hello_$m" hello_off 6)" "tracing off"
done
