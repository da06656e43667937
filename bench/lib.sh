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

# bench_shop_config WORK BIN_DIR SRC [HOSTED]: the whole shop on fresh loopback ports, written
# as WORK/gateway.yaml (the repository's, its rate limits lifted: a load generator is one
# client) and WORK/local.yaml for `shoal up` (data in WORK/data, binaries from BIN_DIR, logs at
# warn). HOSTED, a comma-separated list of services, adds one `hosting:` group named shop.
# Sets ports[0..6] (user, product, cart, inventory, order, payment, notification), gw, admin
# and nats (bench/shop.sh, bench/hosting.sh, scripts/profile.sh).
bench_shop_config() {
    local work=$1 bindir=$2 src=$3 hosted=${4:-} i
    local names=(user product cart inventory order payment notification)
    ports=()
    for i in 1 2 3 4 5 6 7; do ports+=("$(bench_free_port)"); done
    gw=$(bench_free_port); admin=$(bench_free_port); nats=$(bench_free_port)
    local sedargs=()
    for i in 0 1 2 3 4 5 6; do sedargs+=(-e "s/127.0.0.1:$((8101 + i))/127.0.0.1:${ports[$i]}/g"); done
    sed "${sedargs[@]}" -e "s/port: 9901/port: $admin/" \
        -e 's/per_client: {rate: 200, burst: 400}/per_client: {rate: 1000000, burst: 1000000}/' \
        -e 's/rate_limit: {rate: 5, burst: 10}/rate_limit: {rate: 100000, burst: 100000}/' \
        "$src/config/gateway.yaml" >"$work/gateway.yaml"
    {
        echo "data_dir: $work/data"
        echo "bin_dir: $bindir"
        echo "nats: {port: $nats}"
        echo "services:"
        for i in 0 1 2 3 4 5 6; do
            local env="SHOAL_LOG__LEVEL: warn" calls=
            case ${names[$i]} in
            user) env="$env, SHOAL_USER__BOOTSTRAP_ADMIN: \"true\"" ;;
            product) env="$env, SHOAL_PRODUCT__DEMO: \"true\"" ;;
            order) env="$env, SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:${ports[3]}\", SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:${ports[5]}\""
                calls=', calls: [inventory, payment]' ;; # its identity keys
            esac
            echo "  - {name: ${names[$i]}, port: ${ports[$i]}$calls, env: {$env}}"
        done
        echo "  - {name: gateway, port: $gw, config: $work/gateway.yaml, env: {SHOAL_LOG__LEVEL: warn}}"
        if [ -n "$hosted" ]; then
            echo "hosting:"
            echo "  - {name: shop, services: [${hosted//,/, }]}"
        fi
    } >"$work/local.yaml"
}
