#!/usr/bin/env bash
# Runs the whole suite of one build directory with ctest. Suites that need
# servers (PostgreSQL, nats-server) start their own through ctest fixtures,
# so this script needs nothing but the build. Output ends with ctest's summary.
set -euo pipefail
build=${1:-build}
shift || true
cd "$build"
exec ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
