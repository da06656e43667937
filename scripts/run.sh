#!/usr/bin/env bash
# `make run`: starts what exists of the shop on this machine, in the
# foreground; Ctrl-C stops it cleanly (graceful drain).
#
# Today that is the chassis' example service, shoal-hello. The shop services,
# the gateway and `shoal up` replace this script's body as they land.
set -euo pipefail
build=${1:-build}
port=${SHOAL_SERVICE__PORT:-8081}
cat <<MSG
Shoal is running its example service only: the shop services (user, product,
cart, order, inventory, payment, notification) and the gateway are not built
yet. What runs now is shoal-hello, the chassis' first user:

  curl http://127.0.0.1:$port/hello
  curl -d '{"text":"hi"}' http://127.0.0.1:$port/echo
  curl http://127.0.0.1:$port/metrics
  curl http://127.0.0.1:$port/healthz

Logs are JSON lines on this terminal. Ctrl-C stops it.
MSG
exec "$build/bin/shoal-hello" --port "$port"
