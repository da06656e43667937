#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the `pg` tests and the benches.
# `start DIR` runs initdb in DIR/data (as the postgres user when
# run as root), starts the server on a free loopback port and writes its
# connection URL to DIR/url; `stop DIR` shuts it down by PID and removes DIR.
# The cluster itself lives in a private directory under /tmp (named in
# DIR/cluster), which the postgres user can always reach, so no permission
# of the caller's directories is changed.
# Extra server settings for `start` come from PG_FIXTURE_OPTS (the tests use
# fsync=off; the bench keeps the defaults). Fails loudly: the pg tests must
# never skip silently.
set -euo pipefail
cmd=${1:?usage: pg-fixture.sh start|stop DIR}
dir=${2:?usage: pg-fixture.sh start|stop DIR}
opts=${PG_FIXTURE_OPTS-"-c fsync=off"}

pgbin=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pgbin=$d; done
fi

as_pg() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}

stop() {
    local cluster=""
    [ -f "$dir/cluster" ] && cluster=$(cat "$dir/cluster")
    if [ -n "$cluster" ] && [ -f "$cluster/data/postmaster.pid" ]; then
        pid=$(head -1 "$cluster/data/postmaster.pid")
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    case $cluster in /tmp/shoal-pg.*) rm -rf "$cluster" ;; esac
    rm -rf "$dir"
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    if [ ! -x "$pgbin/initdb" ]; then
        echo "pg-fixture: PostgreSQL server binaries not found (install postgresql-15)" >&2
        exit 1
    fi
    stop
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local cluster
    cluster=$(mktemp -d /tmp/shoal-pg.XXXXXX)
    echo "$cluster" >"$dir/cluster"
    mkdir -p "$cluster/sock"
    if [ "$(id -u)" = 0 ]; then
        chmod 0711 "$cluster"
        chown -R postgres:postgres "$cluster"
    fi
    if ! as_pg "'$pgbin/initdb' -D '$cluster/data' -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync" \
        >"$dir/initdb.log" 2>&1; then
        echo "pg-fixture: initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1
    fi
    for _ in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        port_free "$port" || continue
        if as_pg "'$pgbin/pg_ctl' -D '$cluster/data' -l '$cluster/server.log' -w -t 30 start \
                -o \"-p $port -k '$cluster/sock' -c listen_addresses=127.0.0.1 $opts\"" >/dev/null 2>&1; then
            echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
            echo "pg-fixture: PostgreSQL up at $(cat "$dir/url")"
            return 0
        fi
    done
    echo "pg-fixture: PostgreSQL did not start; server log:" >&2
    cat "$cluster/server.log" >&2 2>/dev/null || true
    exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: pg-fixture.sh start|stop DIR" >&2; exit 2 ;;
esac
