#!/usr/bin/env bash
# Catalogue read throughput: shoal-product (SQLite, one worker) answering
#   search   GET /products?q=lantern&per_page=20   (FTS5, bm25 order, with the total count)
#   by_id    GET /products/<id>
# with the read model holding 1,000, 10,000 and 100,000 products. The rows are
# written straight into catalog_view by bench_catalog_load (the service's own
# store code, no commands or events) for speed. The peer of every figure is the
# same request against the 1,000-product catalogue, so the ratio shows how it
# scales with catalogue size.
#   bench/catalog.sh [BUILD_DIR]     env: DURATION (s, default 5), CONNS (default 20)
# Ends with: bench catalog.<name>: <value> req/s (<ratio>x <peer>)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
duration=${DURATION:-5}
conns=${CONNS:-20}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

declare -A rps
for n in 1000 10000 100000; do
    url="sqlite:$work/catalog-$n.db"
    id=$("$bin/bench_catalog_load" "$url" "$n")
    port=$(bench_free_port)
    SHOAL_DB__URL="$url" SHOAL_LOG__LEVEL=error "$bin/shoal-product" --port "$port" --workers 1 \
        2>"$work/product-$n.log" &
    pid=$!
    pids+=($pid)
    bench_wait_port "$port"
    curl -sf "http://127.0.0.1:$port/products/$id" >/dev/null
    total=$(curl -sf "http://127.0.0.1:$port/products?q=lantern&per_page=20" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    echo "catalogue $n products: q=lantern matches $total"
    wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/products?q=lantern&per_page=20" >/dev/null
    read -r s _ _ < <(wrk -t1 -c"$conns" -d"${duration}s" --latency \
        "http://127.0.0.1:$port/products?q=lantern&per_page=20" | bench_wrk_parse)
    read -r b _ _ < <(wrk -t1 -c"$conns" -d"${duration}s" --latency \
        "http://127.0.0.1:$port/products/$id" | bench_wrk_parse)
    rps[search_$n]=$s
    rps[by_id_$n]=$b
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

echo "wrk -t1 -c$conns -d${duration}s, shoal-product --workers 1, SQLite read model loaded directly"
for kind in search by_id; do
    for n in 1000 10000 100000; do
        label=$([ "$n" = 1000 ] && echo 1k || ([ "$n" = 10000 ] && echo 10k || echo 100k))
        bench_line "catalog.${kind}_${label}" "${rps[${kind}_$n]}" req/s "${rps[${kind}_1000]}" "${kind}_1k"
    done
done
