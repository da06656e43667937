#!/usr/bin/env bash
# `make run`: builds are done; start the shop with `shoal up` in the
# foreground. Ctrl-C stops everything cleanly. A watcher prints where the
# pages are once the gateway answers /readyz, after shoal up's table.
set -euo pipefail
build=${1:-build}
config=${SHOAL_LOCAL_CONFIG:-config/local.yaml}
# The gateway's port as the configuration gives it (8080 unless changed there).
port=$(sed -n 's/.*name: *gateway, *port: *\([0-9][0-9]*\).*/\1/p' "$config" | head -n 1)
port=${port:-8080}
shop=$$ # shoal up, once exec'd below
(
    for _ in $(seq 1 600); do
        kill -0 "$shop" 2>/dev/null || exit 0
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
            sleep 1 # shoal up prints its table when it sees the gateway ready: this comes after
            kill -0 "$shop" 2>/dev/null || exit 0
            echo "open http://127.0.0.1:$port/ (shop) and http://127.0.0.1:$port/ops/ (operations)"
            exit 0
        fi
        sleep 0.2
    done
) &
exec "$build/bin/shoal" up --config "$config"
