# Shared helpers for bench/*.sh (sourced).
set -euo pipefail

bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

bench_wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "port $port never opened" >&2
    return 1
}

# wrk output → "rps p50_ms p99_ms"
bench_wrk_parse() {
    awk '
    function ms(v) {
        if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
        if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
        if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
        return v
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

# bench_cpu_ticks PID → the CPU time (user + system, all threads) a process has used so far, in
# clock ticks (getconf CLK_TCK per second)
bench_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# bench_line NAME VALUE UNIT PEER_VALUE PEER_NAME → the summary line format
bench_line() {
    local ratio
    ratio=$(awk -v a="$2" -v b="$4" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
    echo "bench $1: $2 $3 (${ratio}x $5)"
}

# bench_line_ratio NAME VALUE UNIT RATIO PEER_NAME → the same line with a ratio computed elsewhere
bench_line_ratio() {
    echo "bench $1: $2 $3 ($(awk -v r="$4" 'BEGIN { printf "%.2f", r }')x $5)"
}

# Rounds files hold one line per run: "ROUND TARGET VALUE...". Helpers for medians over them.
# bench_median: the median of the numbers on stdin
bench_median() {
    sort -g | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# bench_col FILE TARGET K: column K of TARGET's lines
bench_col() { awk -v n="$2" -v k="$3" '$2 == n {print $k}' "$1"; }
# bench_paired FILE A B K: the median over rounds of A's column K divided by B's in the same round
bench_paired() {
    awk -v a="$2" -v b="$3" -v k="$4" '$2 == a {x[$1] = $k} $2 == b {y[$1] = $k}
        END { for (r in x) if (y[r] > 0) printf "%.4f\n", x[r] / y[r] }' "$1" | bench_median
}
# bench_ratios FILE A B K: the per-round ratios, in round order
bench_ratios() {
    awk -v a="$2" -v b="$3" -v k="$4" '$2 == a {x[$1] = $k} $2 == b {y[$1] = $k}
        END { for (r = 1; r in x; r++) if (y[r] > 0) printf "%.2f ", x[r] / y[r] }' "$1"
}

# bench_gateway_yaml PORT UPSTREAM_PORT → a one-worker shoal-proxy configuration on stdout:
# one route /hello to the upstream, no access log, no tracing (bench/gateway.sh,
# scripts/ab-gateway.sh).
bench_gateway_yaml() {
    cat <<YAML
service: {port: $1, workers: 1}
http: {max_connections: 20000}
log: {level: error, access_log: false}
trace: {sample_ratio: 0}
clusters:
  hello: {endpoints: [127.0.0.1:$2], max_connections: 256, max_idle: 256}
routes:
  - {name: hello, match: {path: /hello}, cluster: hello}
YAML
}
