#!/usr/bin/env bash
# Installs every Debian package that Shoal's build, tests and benchmarks use.
# Idempotent: it asks apt only for what is missing, and runs `apt-get update`
# only when something is missing. Used by `make run`, `make test` and .ci/run.
set -euo pipefail

packages=(
    # build
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    # libshoal dependencies (libuv, http-parser, jansson, libyaml, SQLite, libpq, OpenSSL,
    # libsodium, nats.c, cmocka)
    libuv1-dev libhttp-parser-dev libjansson-dev libyaml-dev libsqlite3-dev
    libpq-dev libssl-dev libsodium-dev libnats-dev libcmocka-dev
    # servers the suites start themselves
    postgresql nats-server
    # test and benchmark tools and peers (prometheus: promtool checks deploy/prometheus and /metrics)
    curl python3 wrk nginx-light haproxy prometheus redis-server procps iproute2
    # the multi-host run (tests/multihost) reads the generated manifests
    jq yq
    # browser tests (tests/browser): Debian's chromium, driven by playwright-core from npm
    chromium nodejs
)

root=$(cd "$(dirname "$0")/.." && pwd)

# The npm packages of package.json, exactly as package-lock.json pins them. `npm ci` runs only
# when the lock file changed since the last install (a stamp in node_modules), so this is quiet.
npm_deps() {
    local stamp="$root/node_modules/.shoal-lock.sha256" want
    want=$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "deps: npm ci (package-lock.json)" >&2
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$stamp"
}

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

# Debian's nodejs comes without npm (its own package); other builds of nodejs bring it along.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    npm_deps
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Servers installed here must not start themselves: the suites run their own
# instances on free ports. policy-rc.d keeps the package scripts from starting them.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
npm_deps
