/*
 * Router: a flat list of compiled templates matched segment by segment.
 * Route tables of services are small (tens of routes), so a linear scan over
 * pre-split segments is both simple and fast; matching allocates nothing.
 */
#include <shoal/router.h>

#include <stdlib.h>
#include <string.h>

typedef struct segment {
    char *text; /* literal text, or the parameter name */
    size_t len;
    int is_param;
} segment;

typedef struct route {
    sl_http_method method;
    char *pattern;
    segment segs[SL_ROUTER_MAX_SEGMENTS];
    size_t nsegs;
    const void *value;
} route;

struct sl_router {
    route *routes;
    size_t n, cap;
};

sl_router *sl_router_new(void)
{
    return calloc(1, sizeof(sl_router));
}

static void route_free(route *rt)
{
    for (size_t i = 0; i < rt->nsegs; i++)
        free(rt->segs[i].text);
    free(rt->pattern);
}

void sl_router_free(sl_router *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    free(r);
}

static int compile(const char *pattern, route *rt)
{
    if (pattern[0] != '/') return SL_EINVAL;
    size_t nparams = 0;
    const char *p = pattern + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (rt->nsegs == SL_ROUTER_MAX_SEGMENTS) return SL_EINVAL;
        segment *s = &rt->segs[rt->nsegs];
        if (len > 0 && p[0] == '{') {
            if (len < 3 || p[len - 1] != '}' || memchr(p + 1, '{', len - 2) ||
                memchr(p + 1, '}', len - 2))
                return SL_EINVAL;
            if (++nparams > SL_ROUTER_MAX_PARAMS) return SL_EINVAL;
            s->is_param = 1;
            s->len = len - 2;
            s->text = strndup(p + 1, len - 2);
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len)) return SL_EINVAL;
            s->is_param = 0;
            s->len = len;
            s->text = strndup(p, len);
        }
        if (!s->text) return SL_ENOMEM;
        rt->nsegs++;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

static int same_template(const route *a, const route *b)
{
    if (a->nsegs != b->nsegs) return 0;
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].is_param != b->segs[i].is_param) return 0;
        if (!a->segs[i].is_param && (a->segs[i].len != b->segs[i].len ||
                                     memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len)))
            return 0;
    }
    return 1;
}

int sl_router_add(sl_router *r, sl_http_method method, const char *pattern, const void *value)
{
    route rt;
    memset(&rt, 0, sizeof rt);
    rt.method = method;
    rt.value = value;
    int rc = compile(pattern, &rt);
    if (rc == 0 && !(rt.pattern = strdup(pattern))) rc = SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < r->n; i++)
        if (r->routes[i].method == method && same_template(&r->routes[i], &rt)) rc = SL_EEXIST;
    if (rc == 0 && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        route *nr = realloc(r->routes, cap * sizeof(route));
        if (!nr)
            rc = SL_ENOMEM;
        else {
            r->routes = nr;
            r->cap = cap;
        }
    }
    if (rc != 0) {
        route_free(&rt);
        return rc;
    }
    r->routes[r->n++] = rt;
    return 0;
}

/*
 * Matches one route against the split path. Returns a specificity score
 * (higher = more specific: literal segments weigh by position) or -1.
 */
static long match_route(const route *rt, const sl_slice *segs, size_t nsegs,
                        sl_route_params *params)
{
    if (rt->nsegs != nsegs) return -1;
    long score = 0;
    size_t np = 0;
    for (size_t i = 0; i < nsegs; i++) {
        const segment *s = &rt->segs[i];
        score <<= 1;
        if (s->is_param) {
            if (segs[i].len == 0) return -1;
            if (params) {
                params->p[np].name = s->text;
                params->p[np].value = segs[i];
            }
            np++;
        } else {
            if (s->len != segs[i].len || memcmp(s->text, segs[i].ptr, s->len) != 0) return -1;
            score |= 1;
        }
    }
    if (params) params->n = np;
    return score;
}

sl_route_result sl_router_match(const sl_router *r, sl_http_method method, sl_slice path,
                                const void **value, sl_route_params *params, unsigned *allowed)
{
    sl_slice segs[SL_ROUTER_MAX_SEGMENTS];
    size_t nsegs = 0;
    if (path.len == 0 || path.ptr[0] != '/') return SL_ROUTE_NOT_FOUND;
    size_t start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i == path.len || path.ptr[i] == '/') {
            if (nsegs == SL_ROUTER_MAX_SEGMENTS) return SL_ROUTE_NOT_FOUND;
            segs[nsegs].ptr = path.ptr + start;
            segs[nsegs].len = i - start;
            nsegs++;
            start = i + 1;
        }
    }

    const route *best = NULL, *best_get = NULL;
    long best_score = -1, best_get_score = -1;
    unsigned mask = 0;
    for (size_t i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        long score = match_route(rt, segs, nsegs, NULL);
        if (score < 0) continue;
        mask |= 1u << rt->method;
        if (rt->method == method && score > best_score) {
            best = rt;
            best_score = score;
        }
        if (rt->method == SL_HTTP_GET && score > best_get_score) {
            best_get = rt;
            best_get_score = score;
        }
    }
    /* RFC 9110 §9.3.2: HEAD is GET without the body. */
    if (!best && method == SL_HTTP_HEAD) best = best_get;
    if (best) {
        match_route(best, segs, nsegs, params);
        *value = best->value;
        return SL_ROUTE_FOUND;
    }
    if (mask == 0) return SL_ROUTE_NOT_FOUND;
    if (mask & (1u << SL_HTTP_GET)) mask |= 1u << SL_HTTP_HEAD;
    if (allowed) *allowed = mask;
    return SL_ROUTE_METHOD_NOT_ALLOWED;
}

size_t sl_router_allow_header(unsigned allowed, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0) return 0;
    out[0] = '\0';
    for (int m = 0; m < SL_HTTP_OTHER; m++) {
        if (!(allowed & (1u << m))) continue;
        const char *name = sl_http_method_name((sl_http_method)m);
        size_t len = strlen(name);
        if (n + len + 3 > cap) break;
        if (n > 0) {
            out[n++] = ',';
            out[n++] = ' ';
        }
        memcpy(out + n, name, len);
        n += len;
        out[n] = '\0';
    }
    return n;
}

sl_slice sl_route_param(const sl_route_params *params, const char *name)
{
    for (size_t i = 0; i < params->n; i++)
        if (strcmp(params->p[i].name, name) == 0) return params->p[i].value;
    return (sl_slice){NULL, 0};
}
