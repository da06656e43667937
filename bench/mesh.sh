#!/usr/bin/env bash
# One service-to-service hop on loopback, four ways, in one run: (a) direct plain HTTP to
# shoal-hello; (b) through two Shoal sidecars with mTLS (the caller's outbound listener, then
# the callee's inbound one, as `shoal up --mesh` runs them); (c) through two nginx instances
# configured the same way (http proxy, TLS 1.3, client certificates, keep-alive upstreams);
# (d) the same with two haproxy instances. Certificates come from `shoal certs`. wrk drives
# each for DURATION seconds with CONNS connections. Per proxy pair: request rate, p50, p99,
# the CPU both proxies used per 1,000 requests, and each proxy's RSS idle and after the run.
#   bench/mesh.sh [BUILD_DIR]     env: DURATION (s, default 10), CONNS (default 16)
# nginx cannot check a SPIFFE URI SAN: its client side verifies nothing (proxy_ssl_verify
# off), its server side checks the client's chain; haproxy checks both chains, no name.
# Ends with: bench mesh.<name>: <value> <unit> (<ratio>x <peer>)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-10}
conns=${CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
m=$work/mesh
"$bin/shoal" certs --dir "$m" init >/dev/null
"$bin/shoal" certs --dir "$m" issue server >/dev/null
"$bin/shoal" certs --dir "$m" issue client >/dev/null
cat "$m/certs/server.pem" "$m/certs/server.key" >"$work/server-combined.pem"
cat "$m/certs/client.pem" "$m/certs/client.key" >"$work/client-combined.pem"

app=$(bench_free_port)
"$bin/shoal-hello" --port "$app" --workers 1 >"$work/hello.log" 2>&1 &
pids+=($!)

# (b) Shoal sidecars
s_in=$(bench_free_port); s_out=$(bench_free_port); s_adm1=$(bench_free_port); s_adm2=$(bench_free_port)
c_in=$(bench_free_port)
sidecar_yaml() { # NAME IN ADMIN LOCAL EXTRA_CLUSTERS EXTRA_SIDECAR
    cat <<YAML
service: {host: 127.0.0.1, port: $2}
admin: {host: 127.0.0.1, port: $3}
log: {level: warn}
clusters:
  local: {endpoints: ["127.0.0.1:$4"]}
$5
sidecar:
  service: $1
  local: local
  cert_file: $m/certs/$1.pem
  key_file: $m/certs/$1.key
  ca_file: $m/bundle.pem
$6
YAML
}
sidecar_yaml server "$s_in" "$s_adm1" "$app" "" "  allow: [{caller: client, routes: [public]}]" >"$work/server.yaml"
sidecar_yaml client "$c_in" "$s_adm2" "$app" "  server: {endpoints: [\"127.0.0.1:$s_in\"]}" \
    "  outbound: [{cluster: server, port: $s_out}]
  allow: []" >"$work/client.yaml"
"$bin/shoal-proxy" --role sidecar --config "$work/server.yaml" >"$work/sc-server.log" 2>&1 &
shoal_b=$!; pids+=($!)
"$bin/shoal-proxy" --role sidecar --config "$work/client.yaml" >"$work/sc-client.log" 2>&1 &
shoal_a=$!; pids+=($!)

# (c) nginx
n_out=$(bench_free_port); n_in=$(bench_free_port)
nginx_conf() { # DIR LISTEN(with ssl params) PROXY_LINES
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    upstream up { server $3; keepalive 64; }
    server {
        listen $2;
        $4
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $5
        }
    }
}
CONF
}
nginx_conf "$work/nginx-out" "127.0.0.1:$n_out" "127.0.0.1:$n_in" "" \
    "proxy_pass https://up; proxy_ssl_certificate $m/certs/client.pem; proxy_ssl_certificate_key $m/certs/client.key; proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse on; proxy_ssl_verify off;"
nginx_conf "$work/nginx-in" "127.0.0.1:$n_in ssl" "127.0.0.1:$app" \
    "ssl_certificate $m/certs/server.pem; ssl_certificate_key $m/certs/server.key; ssl_protocols TLSv1.3; ssl_client_certificate $m/bundle.pem; ssl_verify_client on;" \
    "proxy_pass http://up;"
nginx -p "$work/nginx-in" -c "$work/nginx-in/nginx.conf" >/dev/null 2>&1 &
pids+=($!)
nginx -p "$work/nginx-out" -c "$work/nginx-out/nginx.conf" >/dev/null 2>&1 &
pids+=($!)

# (d) haproxy
h_out=$(bench_free_port); h_in=$(bench_free_port)
cat >"$work/haproxy-in.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend in
    bind 127.0.0.1:$h_in ssl crt $work/server-combined.pem ca-file $m/bundle.pem verify required ssl-min-ver TLSv1.3
    default_backend app
backend app
    http-reuse always
    server s1 127.0.0.1:$app
CFG
cat >"$work/haproxy-out.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend out
    bind 127.0.0.1:$h_out
    default_backend mesh
backend mesh
    http-reuse always
    server s1 127.0.0.1:$h_in ssl crt $work/client-combined.pem ca-file $m/bundle.pem verify required ssl-min-ver TLSv1.3
CFG
haproxy -f "$work/haproxy-in.cfg" -db >"$work/haproxy-in.log" 2>&1 &
pids+=($!)
haproxy -f "$work/haproxy-out.cfg" -db >"$work/haproxy-out.log" 2>&1 &
pids+=($!)

for p in "$app" "$s_in" "$s_out" "$n_out" "$n_in" "$h_out" "$h_in"; do bench_wait_port "$p"; done
sleep 0.5

# The worker processes of an nginx master (the ones that serve), or the pid itself.
serving_pids() { local kids; kids=$(pgrep -P "$1" || true); echo "${kids:-$1}"; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(bench_cpu_ticks "$p"))); done; echo "$t"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
pid_of_port() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

declare -A rps p50 p99 cpu rss_idle rss_busy
run() { # NAME PORT PIDS...
    local name=$1 port=$2; shift 2
    local idle=0 p
    for p in "$@"; do idle=$((idle + $(rss_kb "$p"))); done
    wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/hello" >/dev/null
    local t0; t0=$(ticks "$@")
    read -r rps[$name] p50[$name] p99[$name] < <(wrk -t1 -c"$conns" -d"${duration}s" --latency \
        "http://127.0.0.1:$port/hello" | bench_wrk_parse)
    local t1; t1=$(ticks "$@")
    local busy=0
    for p in "$@"; do busy=$((busy + $(rss_kb "$p"))); done
    local n=$(( $# > 0 ? $# : 1 ))
    cpu[$name]=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v r="${rps[$name]}" -v d="$duration" -v n="$n" \
        'BEGIN { if (r > 0 && n > 0) printf "%.4f", t / hz / (r * d / 1000) / n; else print 0 }')
    rss_idle[$name]=$(( idle / n / 1024 )); rss_busy[$name]=$(( busy / n / 1024 ))
}
ngx_in=$(pid_of_port "$n_in"); ngx_out=$(pid_of_port "$n_out")
hap_in=$(pid_of_port "$h_in"); hap_out=$(pid_of_port "$h_out")
run direct "$app"
run shoal "$s_out" "$shoal_a" "$shoal_b"
run nginx "$n_out" $(serving_pids "$ngx_in") $(serving_pids "$ngx_out")
run haproxy "$h_out" "$hap_in" "$hap_out"

echo "one hop on loopback through a pair of proxies, wrk -t1 -c$conns, ${duration}s each"
echo "(wall-clock figures: on a shared, loaded machine they are indicative only)"
echo "cpu: CPU seconds per 1,000 requests per proxy; rss: MB per proxy, idle / after the run"
printf '%-8s %9s %9s %9s %9s %12s\n' mode req/s p50_ms p99_ms cpu/1k rss_MB
for k in direct shoal nginx haproxy; do
    printf '%-8s %9s %9s %9s %9s %12s\n' "$k" "${rps[$k]}" "${p50[$k]}" "${p99[$k]}" \
        "$([ "$k" = direct ] && echo - || echo "${cpu[$k]}")" \
        "$([ "$k" = direct ] && echo - || echo "${rss_idle[$k]} / ${rss_busy[$k]}")"
done
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a - b) / 2 }'; }
bench_line mesh.shoal_p50_added_per_hop "$(added "${p50[shoal]}" "${p50[direct]}")" ms \
    "$(added "${p50[nginx]}" "${p50[direct]}")" nginx
bench_line mesh.shoal_p99 "${p99[shoal]}" ms "${p99[nginx]}" nginx
bench_line mesh.shoal_cpu_per_1k "${cpu[shoal]}" cpu_s "${cpu[nginx]}" nginx
bench_line mesh.shoal_cpu_per_1k_vs_haproxy "${cpu[shoal]}" cpu_s "${cpu[haproxy]}" haproxy
bench_line mesh.shoal_rss_idle "${rss_idle[shoal]}" MB "${rss_idle[nginx]}" nginx
