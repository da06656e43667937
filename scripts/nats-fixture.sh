#!/usr/bin/env bash
# A throwaway nats-server with JetStream for the `nats` tests and the bus
# bench. `start DIR` starts `nats-server -js` on a free loopback
# port with its store under DIR/store and writes its URL to DIR/url, its PID
# to DIR/pid and its port to DIR/port; `stop DIR` stops it by PID and
# removes DIR. `restart DIR` starts it again on the same port and store
# (used after a test killed it). Fails loudly: the nats tests must never
# skip silently.
set -euo pipefail
cmd=${1:?usage: nats-fixture.sh start|stop|restart DIR}
dir=${2:?usage: nats-fixture.sh start|stop|restart DIR}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop() {
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

# Up means: this launch's server says it is ready and is still running. A port that merely
# answers is not enough: after a kill, another process may have taken the port, and a restart
# would then hand the test somebody else's server.
launch() {
    local port=$1 pid ready_before
    ready_before=$(grep -c "Server is ready" "$dir/server.log" 2>/dev/null || true)
    nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir/store" >>"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ "$(grep -c "Server is ready" "$dir/server.log" 2>/dev/null || true)" -gt "${ready_before:-0}" ] &&
            ! port_free "$port"; then
            echo "nats://127.0.0.1:$port" >"$dir/url"
            echo "$port" >"$dir/port"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

start() {
    if ! command -v nats-server >/dev/null; then
        echo "nats-fixture: nats-server not found (install nats-server)" >&2
        exit 1
    fi
    stop
    mkdir -p "$dir/store"
    dir=$(cd "$dir" && pwd)
    for _ in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        port_free "$port" || continue
        if launch "$port"; then
            echo "nats-fixture: nats-server up at $(cat "$dir/url")"
            return 0
        fi
    done
    echo "nats-fixture: nats-server did not start; log:" >&2
    cat "$dir/server.log" >&2 2>/dev/null || true
    exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
restart)
    launch "$(cat "$dir/port")" || {
        echo "nats-fixture: nats-server did not come back on port $(cat "$dir/port"); log:" >&2
        tail -20 "$dir/server.log" >&2 2>/dev/null || true
        exit 1
    }
    ;;
*) echo "usage: nats-fixture.sh start|stop|restart DIR" >&2; exit 2 ;;
esac
