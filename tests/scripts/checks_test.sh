#!/usr/bin/env bash
# The structure checks can fail: scripts/check-layout.sh and scripts/check-cycles.sh run on
# small trees made here, each once clean (exit 0) and once broken (exit 1, naming the fault).
set -u
src=${1:?usage: checks_test.sh SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
expect() { # expect WANT_RC PATTERN CMD...
    local want=$1 pat=$2
    shift 2
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
        echo "FAIL: $* exited $rc (want $want), output lacks '$pat':"
        echo "$out"
        fails=$((fails + 1))
    fi
}

# Layout: cart may include product's contract/, not product's own headers.
t=$work/layout
mkdir -p "$t/src/services/cart" "$t/src/services/product/contract"
echo 'int product_x;' >"$t/src/services/product/product.h"
echo 'int product_ev;' >"$t/src/services/product/contract/product_events.h"
printf '#include "product/contract/product_events.h"\n' >"$t/src/services/cart/cart.c"
expect 0 '' bash "$src/scripts/check-layout.sh" "$t"
printf '#include "product/product.h"\n' >>"$t/src/services/cart/cart.c"
expect 1 'cart.c:2' bash "$src/scripts/check-layout.sh" "$t"

# Cycles: a.c uses b.c, fine; once b.c uses a.c too, a cycle. The files are in the house
# style (clang-format puts a function's brace on its own line), as the script expects.
t=$work/cycles
mkdir -p "$t"
printf 'int b_fn(void);\nint a_fn(void)\n{\n    return b_fn();\n}\n' >"$t/a.c"
printf 'int b_fn(void)\n{\n    return 1;\n}\n' >"$t/b.c"
expect 0 '' bash "$src/scripts/check-cycles.sh" "$t"
printf 'int a_fn(void);\nint b_fn(void)\n{\n    return a_fn();\n}\n' >"$t/b.c"
expect 1 'cycle' bash "$src/scripts/check-cycles.sh" "$t"

[ "$fails" = 0 ] && echo "checks_test: 4 passed, 0 failed" || echo "checks_test: $fails failed"
[ "$fails" = 0 ]
