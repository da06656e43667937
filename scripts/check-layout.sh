#!/usr/bin/env bash
# check-layout.sh [SOURCE_DIR]
#
# Checks the services' include rule (src/services/CMakeLists.txt): a service
# includes another service's files only from that service's contract/, and a
# contract/ includes only contract files (its own service's internals stay
# out of it). Every quoted #include under src/services/ is resolved the way
# the build resolves it: "<service>/..." from src/services/, anything else
# from the including file's directory; a bare name found nowhere there but in
# another service's directory counts as an include of that file (it would
# need that directory on the include path). Prints each offending include as
# FILE:LINE and exits 1; exits 0 when there is none. Needs only bash,
# coreutils, find and awk.
set -u

root=$(cd "${1:-$(dirname "$0")/..}" && pwd) || exit 2
services_dir=$root/src/services
[ -d "$services_dir" ] || { echo "check-layout: no $services_dir" >&2; exit 2; }

services=()
for d in "$services_dir"/*/; do
    services+=("$(basename "$d")")
done

is_service() {
    local s
    for s in "${services[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

# The file an include of `inc` in `file` names, as a path relative to src/services/ (or
# outside/... when it resolves outside src/services/), printed; nothing when unknown.
resolve() {
    local file=$1 inc=$2 own=$3 first=${2%%/*} dir target s
    dir=${file%/*}
    if [ "$first" != "$inc" ] && is_service "$first"; then
        target=$services_dir/$inc
    elif [ -e "$dir/$inc" ]; then
        target=$dir/$inc
    else
        target=
        for s in "${services[@]}"; do
            [ "$s" = "$own" ] && continue
            [ -n "$(find "$services_dir/$s" -path "*/$inc" -print -quit)" ] || continue
            target=$(find "$services_dir/$s" -path "*/$inc" -print -quit)
            break
        done
        [ -n "$target" ] || return 0
    fi
    target=$(realpath -m "$target")
    case $target in
    "$services_dir"/*) echo "${target#"$services_dir"/}" ;;
    *) echo "outside/${target#/}" ;;
    esac
}

status=0
while IFS= read -r -d '' file; do
    rel=${file#"$services_dir"/}
    own=${rel%%/*}
    in_contract=0
    case $rel in "$own"/contract/*) in_contract=1 ;; esac
    while IFS=$'\t' read -r line inc; do
        target=$(resolve "$file" "$inc" "$own")
        [ -n "$target" ] || continue
        case $target in outside/*) continue ;; esac
        tsvc=${target%%/*}
        case $target in
        "$tsvc"/contract/*) continue ;; # a contract file: anyone may include it
        esac
        if [ "$tsvc" != "$own" ]; then
            echo "src/services/$rel:$line: includes \"$inc\" (src/services/$target):" \
                "$own may include $tsvc's files only from src/services/$tsvc/contract/"
            status=1
        elif [ $in_contract = 1 ]; then
            echo "src/services/$rel:$line: includes \"$inc\" (src/services/$target):" \
                "a contract/ includes only contract files"
            status=1
        fi
    done < <(awk '/^[ \t]*#[ \t]*include[ \t]*"/ {
                    s = $0; sub(/^[^"]*"/, "", s); sub(/".*$/, "", s);
                    printf "%d\t%s\n", FNR, s }' "$file")
done < <(find "$services_dir" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

if [ $status = 0 ]; then
    echo "check-layout: every cross-service include is of a contract/ file"
fi
exit $status
