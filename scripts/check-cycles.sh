#!/usr/bin/env bash
# Fails when the .c files of one directory depend on each other in a cycle.
#   scripts/check-cycles.sh [DIR...]     (default: src/proxy src/lib/http_client)
# A file depends on another when it names a function the other defines with
# external linkage (a call, or a function pointer handed on: either way it
# knows the other file), or when it (or its header X.h, for X.c) includes the
# other's header. Headers with no .c of their own (types only) are not files
# of the graph. The dependencies must form layers: for each cycle found it
# prints the files in order and what each uses of the next, and exits 1.
# Needs only bash and awk.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$here/src/proxy" "$here/src/lib/http_client"
status=0
for dir in "$@"; do
    [ -d "$dir" ] || { echo "check-cycles: $dir: not a directory" >&2; exit 2; }
    shopt -s nullglob
    cs=("$dir"/*.c)
    hs=("$dir"/*.h)
    shopt -u nullglob
    [ ${#cs[@]} -gt 0 ] || continue
    # Pass 1 reads every file for definitions and includes; pass 2 reads the .c files for uses.
    if ! awk -v dir="$dir" '
    function base(path,   b) { b = path; sub(/.*\//, "", b); sub(/\.[ch]$/, "", b); return b }
    function ext(path) { return substr(path, length(path)) }
    # Removes comments and string/char literals from one line (state kept across lines).
    function clean(line,   out, i, c, n) {
        out = ""; n = length(line)
        for (i = 1; i <= n; i++) {
            c = substr(line, i, 1)
            if (incomment) {
                if (c == "*" && substr(line, i + 1, 1) == "/") { incomment = 0; i++ }
                continue
            }
            if (c == "/" && substr(line, i + 1, 1) == "*") { incomment = 1; i++; continue }
            if (c == "/" && substr(line, i + 1, 1) == "/") break
            if (c == "\"" || c == "\047") {
                q = c
                for (i++; i <= n; i++) {
                    c = substr(line, i, 1)
                    if (c == "\\") { i++; continue }
                    if (c == q) break
                }
                out = out " "
                continue
            }
            out = out c
        }
        return out
    }
    FNR == 1 { incomment = 0; pending = "" }
    pass == 1 && /^[ \t]*#[ \t]*include[ \t]*"/ {
        inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc); sub(/.*\//, "", inc)
        if (inc ~ /\.h$/) { n_inc++; inc_from[n_inc] = base(FILENAME); inc_to[n_inc] = base(inc); inc_name[n_inc] = inc }
        next
    }
    {
        line = clean($0)
    }
    pass == 1 && ext(FILENAME) == "c" {
        if (line ~ /^[A-Za-z_]/ && line !~ /^(static|typedef|extern|struct[^(]*;|enum|union)/ && line ~ /\(/) {
            name = line; sub(/\(.*/, "", name); sub(/.*[^A-Za-z0-9_]/, "", name)
            pending = name
        }
        if (pending != "" && line ~ /^\{/) { def[pending] = base(FILENAME); pending = "" }
        else if (pending != "" && line ~ /;/) pending = ""
        next
    }
    pass == 2 {
        f = base(FILENAME)
        s = line
        while (match(s, /[A-Za-z_][A-Za-z0-9_]*/)) {
            id = substr(s, RSTART, RLENGTH)
            before = substr(s, 1, RSTART - 1)
            s = substr(s, RSTART + RLENGTH)
            if (before ~ /(\.|->)[ \t]*$/) continue # a member, not a function
            if ((id in def) && def[id] != f && !((f, def[id]) in why)) why[f, def[id]] = "uses " id "()"
        }
    }
    END {
        m = split(hasc_list, hl, " ")
        for (k = 1; k <= m; k++) hasc[hl[k]] = 1
        # Include edges: X.c or X.h including Y.h, when both X.c and Y.c exist.
        for (k = 1; k <= n_inc; k++) {
            a = inc_from[k]; b = inc_to[k]
            if (a == b || !(a in hasc) || !(b in hasc)) continue
            if (!((a, b) in why)) why[a, b] = "includes " inc_name[k]
        }
        for (e in why) { split(e, p, SUBSEP); adj[p[1]] = adj[p[1]] " " p[2]; if (verbose) print dir ": " p[1] ".c -> " p[2] ".c (" why[e] ")" }
        found = 0
        for (v in hasc) if (!(v in color)) dfs(v, 0)
        exit found ? 1 : 0
    }
    function dfs(v, depth,   list, m, i, w, k, msg) {
        color[v] = 1; stack[depth] = v
        m = split(adj[v], list, " ")
        for (i = 1; i <= m; i++) {
            w = list[i]
            if (w == "") continue
            if ((w in color) && color[w] == 1) {
                for (k = depth; k >= 0 && stack[k] != w; k--) ;
                msg = "check-cycles: " dir ": cycle: "
                for (; k <= depth; k++) {
                    nxt = k < depth ? stack[k + 1] : w
                    msg = msg stack[k] ".c (" why[stack[k], nxt] ") -> "
                }
                print msg w ".c" > "/dev/stderr"
                found = 1
            } else if (!(w in color)) {
                dfs(w, depth + 1)
            }
        }
        color[v] = 2
    }
    ' verbose="${CHECK_CYCLES_VERBOSE:-}" pass=1 "${cs[@]}" "${hs[@]}" pass=2 "${cs[@]}" \
      hasc_list="$(for c in "${cs[@]}"; do basename "$c" .c; done | tr '\n' ' ')" /dev/null; then
        status=1
    else
        echo "check-cycles: $dir: no cycle between its ${#cs[@]} .c files"
    fi
done
exit $status
