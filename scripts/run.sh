#!/usr/bin/env bash
# `make run`: builds are done; start the shop with `shoal up` in the
# foreground. Ctrl-C stops everything cleanly.
set -euo pipefail
build=${1:-build}
exec "$build/bin/shoal" up --config "${SHOAL_LOCAL_CONFIG:-config/local.yaml}"
