/*
 * Gateway route matching and path rewriting (route.h).
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int px_route_compile(px_route *r)
{
    r->nsegs = 0;
    if (r->kind != PX_MATCH_TEMPLATE) return r->path && r->path[0] == '/' ? 0 : SL_EINVAL;
    const char *p = r->path;
    if (!p || p[0] != '/') return SL_EINVAL;
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (r->nsegs == SL_ROUTER_MAX_SEGMENTS) return SL_EINVAL;
        int param = len >= 3 && p[0] == '{' && p[len - 1] == '}';
        if (!param && (memchr(p, '{', len) || memchr(p, '}', len))) return SL_EINVAL;
        r->segs[r->nsegs] = param ? strndup(p + 1, len - 2) : strndup(p, len);
        if (!r->segs[r->nsegs]) return SL_ENOMEM;
        r->seg_param[r->nsegs++] = param;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

void px_route_free(px_route *r)
{
    free(r->name);
    free(r->path);
    free(r->rewrite);
    free(r->owner_param);
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
}

static int match_path(const px_route *r, sl_slice path, sl_route_params *params)
{
    size_t plen = r->kind == PX_MATCH_TEMPLATE ? 0 : strlen(r->path);
    switch (r->kind) {
    case PX_MATCH_EXACT:
        return path.len == plen && memcmp(path.ptr, r->path, plen) == 0;
    case PX_MATCH_PREFIX:
        return path.len >= plen && memcmp(path.ptr, r->path, plen) == 0;
    case PX_MATCH_TEMPLATE:
        break;
    }
    if (path.len == 0 || path.ptr[0] != '/') return 0;
    size_t seg = 0, start = 1, np = 0;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.ptr[i] != '/') continue;
        if (seg == r->nsegs) return 0;
        sl_slice s = {path.ptr + start, i - start};
        if (r->seg_param[seg]) {
            if (s.len == 0 || np == SL_ROUTER_MAX_PARAMS) return 0;
            if (params) {
                params->p[np].name = r->segs[seg];
                params->p[np].value = s;
            }
            np++;
        } else if (!sl_slice_eq(s, r->segs[seg])) {
            return 0;
        }
        seg++;
        start = i + 1;
    }
    if (seg != r->nsegs) return 0;
    if (params) params->n = np;
    return 1;
}

static int match_headers(const px_route *r, const sl_http_header *h, size_t n)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        sl_slice v;
        if (!sl_http_header_find(h, n, r->headers[i].name, &v)) return 0;
        if (r->headers[i].value && !sl_slice_eq(v, r->headers[i].value)) return 0;
    }
    return 1;
}

const px_route *px_routes_match(const px_routes *t, sl_http_method method, sl_slice path,
                                const sl_http_header *headers, size_t nheaders,
                                sl_route_params *params, unsigned *allowed)
{
    SL_ASSERT(t && params && (headers || nheaders == 0)); /* allowed: optional */
    unsigned mask = 0;
    sl_http_method m = method == SL_HTTP_HEAD ? SL_HTTP_GET : method;
    for (size_t i = 0; i < t->n; i++) {
        const px_route *r = &t->items[i];
        if (!match_path(r, path, NULL) || !match_headers(r, headers, nheaders)) continue;
        if (r->methods && !(r->methods & (1u << method)) && !(r->methods & (1u << m))) {
            mask |= r->methods;
            continue;
        }
        match_path(r, path, params);
        if (allowed) *allowed = 0;
        return r;
    }
    if (mask & (1u << SL_HTTP_GET)) mask |= 1u << SL_HTTP_HEAD;
    if (allowed) *allowed = mask;
    return NULL;
}

int px_route_target(const px_route *r, sl_slice path, sl_slice query, const sl_route_params *params,
                    char *out, size_t cap)
{
    SL_ASSERT(r && params && out && cap > 0);
    size_t o = 0;
#define PUT(ptr, len)                                                                              \
    do {                                                                                           \
        if (o + (len) >= cap) return SL_ELIMIT;                                                    \
        memcpy(out + o, (ptr), (len));                                                             \
        o += (len);                                                                                \
    } while (0)
    if (!r->rewrite) {
        PUT(path.ptr, path.len);
    } else if (r->kind == PX_MATCH_PREFIX) {
        size_t plen = strlen(r->path);
        PUT(r->rewrite, strlen(r->rewrite));
        PUT(path.ptr + plen, path.len - plen);
    } else {
        for (const char *p = r->rewrite; *p;) {
            const char *open = strchr(p, '{');
            const char *close = open ? strchr(open, '}') : NULL;
            if (!open || !close) {
                PUT(p, strlen(p));
                break;
            }
            PUT(p, (size_t)(open - p));
            sl_slice v = {NULL, 0};
            for (size_t i = 0; params && i < params->n; i++)
                if (strlen(params->p[i].name) == (size_t)(close - open - 1) &&
                    memcmp(params->p[i].name, open + 1, (size_t)(close - open - 1)) == 0)
                    v = params->p[i].value;
            PUT(v.ptr ? v.ptr : "", v.len);
            p = close + 1;
        }
    }
    if (o == 0 || out[0] != '/') return SL_EINVAL;
    if (query.len) {
        PUT("?", 1);
        PUT(query.ptr, query.len);
    }
#undef PUT
    out[o] = '\0';
    return (int)o;
}
