#!/usr/bin/env bash
# The multi-host run (`make test-multihost`, docs/operations.md "The multi-host run").
#
# Three Linux network namespaces ("hosts") on one bridge, a three-node NATS JetStream cluster
# (one node per host), one PostgreSQL server on the host's end of the bridge (a database per
# service), two instances of every service spread over the hosts and a gateway on two of them.
# Under a steady checkout load through one gateway it kills every process of one host
# (SIGKILL, its NATS node included), brings the host back, then does the same to another host.
# It then checks that every order reached a terminal state, that `shoal audit` is clean and
# that no saga step was driven twice, and prints orders/s before, during and after each failure
# and the time to recover.
#
# Each process gets the environment the Kubernetes generator (`shoal deploy k8s`) writes for it
# from config/scale.yaml, with the cluster's names (postgres, nats-N.nats, <service>) replaced
# by the addresses of this run; the gateway gets the generated gateway configuration with each
# cluster's endpoints set to the hosts that run that service.
#
# Usage: tests/multihost/run.sh [BUILD_DIR]      (root; exit 77 when it cannot run here)
# Settings: MULTIHOST_RATE (checkouts/s, default 8), MULTIHOST_PHASE_S (seconds of each phase
# before, during and after a failure, default 20), MULTIHOST_KEEP=1 keeps the run directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bin
rate=${MULTIHOST_RATE:-8}
phase_s=${MULTIHOST_PHASE_S:-20}
topology_src=$root/config/scale.yaml

skip() {
    echo "multihost: SKIP: $*" >&2
    exit 77
}
say() { echo "multihost: $*" >&2; }
die() {
    echo "multihost: FAIL: $*" >&2
    exit 1
}

# ---- can it run here? -------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a bridge); run it as root"
command -v ip >/dev/null || skip "ip (iproute2) not found"
probe_ns=shoal-mh-probe-$$
ip netns add "$probe_ns" 2>/dev/null || skip "ip netns is not available here (cannot create a network namespace)"
ip netns del "$probe_ns"
for t in nats-server yq jq curl psql; do
    command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh installs it)"
done
for b in shoal shoal-proxy shoal-user shoal-product shoal-cart shoal-inventory shoal-order \
    shoal-payment shoal-notification; do
    [ -x "$bin/$b" ] || die "$bin/$b is not built (make build)"
done

# ---- names and addresses of this run ----------------------------------------------------
sfx=$(printf '%04x' $((RANDOM % 65536)))
br=shmb$sfx
ns() { echo "shoal-mh-$sfx-h$1"; }
net=""
for _ in $(seq 1 50); do
    x=$((1 + RANDOM % 254))
    ip -4 -o addr show | grep -q " 10\.213\.$x\." && continue
    ip -4 route show | grep -q "^10\.213\.$x\." && continue
    net=10.213.$x
    break
done
[ -n "$net" ] || die "no free 10.213.X.0/24 subnet"
gw_ip=$net.1                      # the host's end of the bridge: PostgreSQL listens here
ip_of() { echo "$net.$((10 + $1))"; }

run=$(mktemp -d /tmp/shoal-mh.XXXXXX)
chmod 0700 "$run"
pg_hba_dir=""
load_pid=""
t_start=$(date +%s)
declare -A ready_url

# Which service instances each host runs: two instances of every service, a gateway on hosts
# 1 and 3. Order runs beside inventory and payment, the services it calls, so each order
# instance calls the instances on its own host; the load goes through the gateway of host 3,
# and hosts 1 and 2 are the ones taken down.
declare -A placement=(
    [1]="user product inventory order payment gateway"
    [2]="cart inventory order payment notification"
    [3]="user product cart notification gateway"
)
load_host=3
victims=(1 2)

hosts_of() { # the hosts running service $1, in order
    local h out=""
    for h in 1 2 3; do
        case " ${placement[$h]} " in *" $1 "*) out="$out $h" ;; esac
    done
    echo "$out"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [ -n "$load_pid" ] && kill -KILL "$load_pid" 2>/dev/null
    for h in 1 2 3; do
        if ip netns list | grep -q "^$(ns "$h")\b"; then
            for p in $(ip netns pids "$(ns "$h")" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        fi
    done
    sleep 0.3
    for h in 1 2 3; do ip netns del "$(ns "$h")" 2>/dev/null; done
    ip link del "$br" 2>/dev/null
    [ -d "$run/pg" ] && "$root/scripts/pg-fixture.sh" stop "$run/pg" >/dev/null 2>&1
    [ -n "$pg_hba_dir" ] && rm -rf "$pg_hba_dir"
    if [ "$rc" != 0 ] && [ "$rc" != 77 ] || [ "${MULTIHOST_KEEP:-0}" = 1 ]; then
        say "logs kept in $run (remove it when done)"
    else
        rm -rf "$run"
    fi
    say "cleaned up: namespaces, bridge $br, processes, PostgreSQL ($(($(date +%s) - t_start)) s in all)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- network ------------------------------------------------------------------------------
say "bridge $br $gw_ip/24, hosts $(ns 1)..3 at $(ip_of 1), $(ip_of 2), $(ip_of 3)"
ip link add "$br" type bridge
ip addr add "$gw_ip/24" dev "$br"
ip link set "$br" up
for h in 1 2 3; do
    n=$(ns "$h")
    ip netns add "$n"
    ip link add "shmv${sfx}h$h" type veth peer name "shmp${sfx}h$h"
    ip link set "shmp${sfx}h$h" netns "$n"
    ip link set "shmv${sfx}h$h" master "$br" up
    ip -n "$n" link set lo up
    ip -n "$n" link set "shmp${sfx}h$h" name eth0
    ip -n "$n" addr add "$(ip_of "$h")/24" dev eth0
    ip -n "$n" link set eth0 up # no default route: only the bridge's subnet is reachable
done
for h in 1 2 3; do
    ping_ok=0
    for _ in $(seq 1 30); do
        # A refused connection to a closed port of the bridge's address: the path works.
        out=$(ip netns exec "$(ns "$h")" timeout 2 bash -c "exec 3<>/dev/tcp/$gw_ip/9" 2>&1 || true)
        if [[ $out == *refused* ]]; then
            ping_ok=1
            break
        fi
        sleep 0.1
    done
    [ "$ping_ok" = 1 ] || die "host $h cannot reach the bridge address $gw_ip"
done

# ---- PostgreSQL on the bridge address -----------------------------------------------------
pg_hba_dir=$(mktemp -d /tmp/shoal-mh-hba.XXXXXX)
chmod 0711 "$pg_hba_dir"
printf 'local all all trust\nhost all all %s/24 trust\n' "$net.0" >"$pg_hba_dir/pg_hba.conf"
chmod 0644 "$pg_hba_dir/pg_hba.conf"
PG_FIXTURE_OPTS="-c fsync=off -c max_connections=300 -c listen_addresses=$gw_ip -c hba_file=$pg_hba_dir/pg_hba.conf" \
    "$root/scripts/pg-fixture.sh" start "$run/pg" >/dev/null
pg_port=$(sed -E 's|.*:([0-9]+)/.*|\1|' "$run/pg/url")
pg_url() { echo "postgresql://postgres@$gw_ip:$pg_port/$1"; }
psql -qAt -v ON_ERROR_STOP=1 "$(pg_url postgres)" -c "CREATE ROLE shoal LOGIN" >/dev/null
say "PostgreSQL at $gw_ip:$pg_port"

# ---- topology: config/scale.yaml with this run's addresses ---------------------------------
# The databases and the NATS URL of the topology are replaced by this run's; everything else
# (services, ports, env, calls, the gateway's file) is the topology's own.
nats_urls="nats://$(ip_of 1):4222,nats://$(ip_of 2):4222,nats://$(ip_of 3):4222"
sed -E -e "s|postgresql://([a-z]+)@[0-9.]+:[0-9]+/|postgresql://\1@$gw_ip:$pg_port/|g" \
    -e "s|^(  url: ).*|\1$nats_urls|" "$topology_src" >"$run/topology.yaml"
grep -q "@$gw_ip:$pg_port/" "$run/topology.yaml" && grep -q "$nats_urls" "$run/topology.yaml" ||
    die "$topology_src: no db_url or nats url to point at this run (its layout changed?)"
services=$(yq -r '.services[].name | select(. != "gateway")' "$run/topology.yaml")
for s in $services; do
    db=$(yq -r ".services[] | select(.name == \"$s\") | .db_url" "$run/topology.yaml" | sed 's|.*/||')
    psql -qAt -v ON_ERROR_STOP=1 "$(pg_url postgres)" -c "CREATE DATABASE $db OWNER shoal" >/dev/null
done
for s in $services gateway; do
    [ "$(hosts_of "$s" | wc -w)" -ge 2 ] || die "placement: $s needs two hosts"
done
(cd "$root" && "$bin/shoal" deploy k8s --config "$run/topology.yaml" --out "$run/k8s") >/dev/null
(cd "$root" && "$bin/shoal" deploy keys --config "$run/topology.yaml" --out "$run/keys") >/dev/null
openssl genpkey -algorithm ed25519 -out "$run/user-signing.pem" 2>/dev/null
chmod 0600 "$run/user-signing.pem"

# The cluster's names → this run's addresses, for process $2 on host $1.
localize() {
    local h=$1 name=$2 callee inv to
    local args=(-e "s|@postgres:5432/|@$gw_ip:$pg_port/|g"
        -e "s|nats-0\.nats:|$(ip_of 1):|g" -e "s|nats-1\.nats:|$(ip_of 2):|g"
        -e "s|nats-2\.nats:|$(ip_of 3):|g"
        -e "s|/etc/shoal/identity/|$run/keys/keys/|g"
        -e "s|/etc/shoal/signing/user-signing\.pem|$run/user-signing.pem|g"
        -e "s|/etc/shoal/config/gateway\.yaml|$run/gateway.yaml|g"
        -e "s|/var/lib/shoal|$run/h$h/$name|g")
    for callee in $services; do # an upstream: its instance on this host, else the first one
        inv=$(hosts_of "$callee")
        to=${inv# }
        to=${to%% *}
        case " $inv " in *" $h "*) to=$h ;; esac
        args+=(-e "s|http://$callee:|http://$(ip_of "$to"):|g")
    done
    sed "${args[@]}"
}

# Per process: an env file (KEY=value lines) and its command line.
for h in 1 2 3; do
    mkdir -p "$run/h$h"
    for s in ${placement[$h]}; do
        mkdir -p "$run/h$h/$s"
        chmod 0700 "$run/h$h/$s"
        yq -r "select(.kind == \"ConfigMap\" and .metadata.name == \"$s-env\") | .data |
               to_entries[] | \"\(.key)=\(.value)\"" "$run/k8s/base/$s.yaml" |
            localize "$h" "$s" >"$run/h$h/$s.env"
        yq -r 'select(.kind == "Deployment") | .spec.template.spec.containers[0].command[]' \
            "$run/k8s/base/$s.yaml" | sed 's|^/usr/local/bin/||' | localize "$h" "$s" >"$run/h$h/$s.cmd"
    done
done
# The gateway's file: the generated one, each cluster's endpoints = the hosts running it.
yq -r 'select(.kind == "ConfigMap" and .metadata.name == "gateway-config") | .data["gateway.yaml"]' \
    "$run/k8s/base/gateway.yaml" >"$run/gateway.k8s.yaml"
eps='.'
for c in $(yq -r '.clusters | keys[]' "$run/gateway.k8s.yaml"); do
    port=$(yq -r ".services[] | select(.name == \"$c\") | .port" "$run/topology.yaml")
    list=$(for h in $(hosts_of "$c"); do printf '"%s:%s",' "$(ip_of "$h")" "$port"; done)
    eps="$eps | .clusters[\"$c\"].endpoints = [${list%,}]"
done
yq -y "$eps" "$run/gateway.k8s.yaml" >"$run/gateway.yaml"
# NATS: the generated nats.conf, its store and routes on this run's hosts.
yq -r 'select(.kind == "ConfigMap" and .metadata.name == "nats-config") | .data["nats.conf"]' \
    "$run/k8s/base/nats.yaml" >"$run/nats.k8s.conf"
for h in 1 2 3; do
    mkdir -p "$run/h$h/nats"
    chmod 0700 "$run/h$h/nats"
    sed -e "s|\$SERVER_NAME|n$h|" -e "s|store_dir: /data|store_dir: \"$run/h$h/nats\"|" \
        "$run/nats.k8s.conf" | localize "$h" nats >"$run/h$h/nats.conf"
done
grep -q "$(ip_of 2):6222" "$run/h1/nats.conf" || die "the generated nats.conf has no routes to rewrite"

# ---- processes -----------------------------------------------------------------------------
spawn() { # host name: start one process in the host's namespace, log in h<host>/<name>.log
    local h=$1 name=$2 envs=() cmd=() l
    while IFS= read -r l; do envs+=("$l"); done <"$run/h$h/$name.env"
    while IFS= read -r l; do cmd+=("$l"); done <"$run/h$h/$name.cmd"
    cmd[0]=$bin/${cmd[0]}
    : >>"$run/h$h/$name.log"
    chmod 0600 "$run/h$h/$name.log"
    (cd "$root" && exec ip netns exec "$(ns "$h")" env -i PATH=/usr/bin:/bin "${envs[@]}" \
        "${cmd[@]}" >>"$run/h$h/$name.log" 2>&1) &
    disown $! # killed on purpose later: no job-control notice
}

wait_url() { # url what timeout_s
    local deadline=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true)" = 200 ] && return 0
        sleep 0.25
    done
    die "$2 not ready within $3 s ($1: $(curl -s -m 2 "$1" | head -c 300)); see $run"
}

start_nats() {
    local h=$1
    : >>"$run/h$h/nats.log"
    chmod 0600 "$run/h$h/nats.log"
    ip netns exec "$(ns "$h")" nats-server -c "$run/h$h/nats.conf" >>"$run/h$h/nats.log" 2>&1 &
    disown $!
}

start_service() { # host name
    local h=$1 s=$2 port
    port=$(grep '^SHOAL_SERVICE__PORT=' "$run/h$h/$s.env" | cut -d= -f2)
    spawn "$h" "$s"
    wait_url "http://$(ip_of "$h"):$port/readyz" "$s on host $h" 90
}

start_host() { # the host's NATS node, then its services in the topology's order
    local h=$1 s
    start_nats "$h"
    wait_url "http://$(ip_of "$h"):8222/healthz" "nats on host $h" 60
    for s in $services gateway; do
        case " ${placement[$h]} " in *" $s "*) start_service "$h" "$s" ;; esac
    done
}

kill_host() {
    local h=$1 p n=0
    for p in $(ip netns pids "$(ns "$h")"); do
        kill -KILL "$p" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}

now_ms() { date +%s%3N; }

say "starting NATS (3 nodes) and $(( $(echo "${placement[@]}" | wc -w) )) service processes"
for h in 1 2 3; do start_nats "$h"; done
for h in 1 2 3; do wait_url "http://$(ip_of "$h"):8222/healthz" "nats on host $h" 60; done
# Both instances of a service start one after the other (the first applies the migrations and
# makes the admin), services in the topology's order, the gateways last.
for s in $services gateway; do
    for h in $(hosts_of "$s"); do start_service "$h" "$s"; done
done
target=http://$(ip_of "$load_host"):8080
creds=$run/h$(hosts_of user | awk '{print $1}')/user/admin-credentials
[ -f "$creds" ] || die "no admin credentials at $creds"
say "the shop is up ($(($(date +%s) - t_start)) s); load: $rate checkouts/s through $target"

# ---- load and faults -------------------------------------------------------------------------
"$bin/shoal" load --scenario checkout --rate "$rate" --duration 10m --warmup 0s --users 16 \
    --target "$target" --allow-remote --admin-credentials "$creds" --json \
    >"$run/load.json" 2>"$run/load.log" &
load_pid=$!
# The measured window starts when the set-up is done (the first progress line).
for _ in $(seq 1 600); do
    kill -0 "$load_pid" 2>/dev/null || die "shoal load stopped: $(tail -5 "$run/load.log")"
    grep -q 'users ready; running' "$run/load.log" && break
    sleep 0.2
done
declare -a marks=() labels=()
mark() { marks+=("$(now_ms)"); labels+=("$1"); }
mark "before"
sleep "$phase_s"
declare -A killed_at back_at
for v in "${victims[@]}"; do
    killed_at[$v]=$(now_ms)
    n=$(kill_host "$v")
    mark "host $v down"
    say "host $v down: $n processes killed with SIGKILL"
    sleep "$phase_s"
    t0=$(now_ms)
    start_host "$v"
    back_at[$v]=$(now_ms)
    say "host $v back: every process ready $(((back_at[$v] - t0) / 1000)).$(((back_at[$v] - t0) % 1000 / 100)) s after restart"
    mark "after host $v"
    sleep "$phase_s"
done
end_ms=$(now_ms)
kill -INT "$load_pid"
wait "$load_pid" || die "shoal load failed: $(tail -5 "$run/load.log")"
load_pid=""

# ---- checks ----------------------------------------------------------------------------------
fail=0
check() { # ok? text
    if [ "$1" = 0 ]; then echo "  ok    $2"; else echo "  FAIL  $2"; fail=1; fi
}
order_db=$(pg_url "$(yq -r '.services[] | select(.name == "order") | .db_url' "$run/topology.yaml" | sed 's|.*/||')")
q() { psql -qAt -v ON_ERROR_STOP=1 "$order_db" -c "$1"; }

say "load stopped; waiting for the shop to settle, then auditing"
audit_rc=0
"$bin/shoal" audit --target "$target" --admin-credentials "$creds" --settle 120s >"$run/audit.txt" 2>&1 ||
    audit_rc=$?

accepted=$(jq '.checkout.accepted' "$run/load.json")
confirmed=$(jq '.checkout.confirmed' "$run/load.json")
pending_end=$(jq '.checkout.pending_at_end' "$run/load.json")
in_db=$(q "SELECT count(*) FROM orders")
non_terminal=$(q "SELECT count(*) FROM orders WHERE status = 'pending'")
unfinished_sagas=$(q "SELECT count(*) FROM saga_instances WHERE status NOT IN ('completed', 'compensated')")
# A step's outcome recorded twice for the same attempt = the step was driven twice.
dup_outcomes=$(q "SELECT count(*) FROM (SELECT 1 FROM saga_history
    WHERE kind IN ('replied', 'refused', 'failed', 'timeout')
    GROUP BY saga_id, step, call_kind, attempt, kind HAVING count(*) > 1) d")
dup_ends=$(q "SELECT count(*) FROM (SELECT 1 FROM saga_history WHERE kind IN ('completed', 'compensated')
    GROUP BY saga_id, kind HAVING count(*) > 1) d")
# A call sent again for the same attempt is allowed only after a takeover (a 'resumed' entry).
dup_sends=$(q "SELECT count(*) FROM (SELECT saga_id, step, call_kind, attempt, count(*) AS n
    FROM saga_history WHERE kind = 'sent' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d
    WHERE n - 1 > (SELECT count(*) FROM saga_history r WHERE r.saga_id = d.saga_id AND r.kind = 'resumed')")
resends=$(q "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM saga_history
    WHERE kind = 'sent' GROUP BY saga_id, step, call_kind, attempt HAVING count(*) > 1) d")
takeovers=$(q "SELECT count(DISTINCT saga_id) FROM saga_history WHERE kind = 'resumed'")

echo
echo "multihost: results (rate $rate checkouts/s through the gateway on host $load_host, phases of $phase_s s)"
printf '  %-16s %8s %10s %10s %10s\n' "phase" "seconds" "placed/s" "confirmed/s" "cancelled/s"
n=${#marks[@]}
for i in $(seq 0 $((n - 1))); do
    a=${marks[$i]}
    if [ "$i" -lt $((n - 1)) ]; then b=${marks[$((i + 1))]}; else b=$end_ms; fi
    row=$(q "SELECT count(*) FILTER (WHERE created_ms >= $a AND created_ms < $b),
                    count(*) FILTER (WHERE status IN ('confirmed', 'shipped', 'delivered')
                                     AND updated_ms >= $a AND updated_ms < $b),
                    count(*) FILTER (WHERE status = 'cancelled' AND updated_ms >= $a AND updated_ms < $b)
             FROM orders")
    IFS='|' read -r placed conf canc <<<"$row"
    secs=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    printf '  %-16s %8s %10s %10s %10s\n' "${labels[$i]}" "$secs" \
        "$(awk -v c="$placed" -v s="$secs" 'BEGIN { printf "%.1f", c / s }')" \
        "$(awk -v c="$conf" -v s="$secs" 'BEGIN { printf "%.1f", c / s }')" \
        "$(awk -v c="$canc" -v s="$secs" 'BEGIN { printf "%.1f", c / s }')"
done
echo
printf '  %-8s %22s %26s %22s\n' "failure" "first confirm after kill" "first new order confirmed" "host back (all ready)"
for v in "${victims[@]}"; do
    k=${killed_at[$v]}
    any=$(q "SELECT coalesce(min(updated_ms) - $k, -1) FROM orders
             WHERE status IN ('confirmed', 'shipped', 'delivered') AND updated_ms >= $k")
    new=$(q "SELECT coalesce(min(updated_ms) - $k, -1) FROM orders
             WHERE status IN ('confirmed', 'shipped', 'delivered') AND created_ms >= $k")
    fmt() { if [ "$1" -lt 0 ]; then echo "none"; else awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; fi; }
    printf '  %-8s %22s %26s %22s\n' "host $v" "$(fmt "$any")" "$(fmt "$new")" \
        "$(fmt $((back_at[$v] - k)))"
    [ "$new" -ge 0 ] || fail=1
done
echo
echo "  load: accepted $accepted, confirmed $confirmed, still pending when it stopped polling $pending_end;" \
    "orders in the database $in_db"
echo "  sagas: $takeovers taken over or resumed, $resends calls re-sent after a takeover"
check "$non_terminal" "every order reached a terminal state ($non_terminal pending)"
check "$unfinished_sagas" "every saga finished ($unfinished_sagas running, compensating or stuck)"
lost=0
[ "$in_db" -ge "$accepted" ] || lost=1
check "$lost" "every accepted order is in the order database ($in_db >= $accepted)"
check "$audit_rc" "shoal audit is clean (exit $audit_rc)"
check "$dup_outcomes" "no step outcome recorded twice for one attempt ($dup_outcomes)"
check "$dup_ends" "no saga completed or compensated twice ($dup_ends)"
check "$dup_sends" "no call re-sent for one attempt without a takeover ($dup_sends)"
sed 's/^/    audit: /' "$run/audit.txt"
echo
if [ "$fail" != 0 ]; then
    die "the multi-host run failed (logs: $run)"
fi
echo "multihost: PASS ($(($(date +%s) - t_start)) s)"
