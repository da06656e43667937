/*
 * The router: method + path template ("/orders/{id}") → a route value.
 * Gives 404 and 405 (with the allowed methods for the Allow header) and
 * serves HEAD from GET routes. Pure: no I/O, no allocation while matching.
 *
 * Templates are absolute paths whose segments are literals or `{name}`
 * parameters matching exactly one non-empty segment. When several templates
 * match, the more specific wins: at the first segment where they differ, a
 * literal beats a parameter ("/orders/mine" beats "/orders/{id}").
 */
#ifndef SHOAL_ROUTER_H
#define SHOAL_ROUTER_H

#include <shoal/http_types.h>

#define SL_ROUTER_MAX_PARAMS   8
#define SL_ROUTER_MAX_SEGMENTS 32

/* Captured parameters: slices into the matched path (still percent-encoded). */
typedef struct sl_route_params {
    size_t n;
    struct {
        const char *name; /* the template's name, static for the router's life */
        sl_slice value;
    } p[SL_ROUTER_MAX_PARAMS];
} sl_route_params;

typedef enum sl_route_result {
    SL_ROUTE_FOUND = 0,
    SL_ROUTE_NOT_FOUND = 1,
    SL_ROUTE_METHOD_NOT_ALLOWED = 2,
} sl_route_result;

typedef struct sl_router sl_router;

/* Returns a new empty router (free with sl_router_free), or NULL when out of memory. */
SL_API sl_router *sl_router_new(void);

/* Frees the router and its copies of the templates. NULL is allowed. */
SL_API void sl_router_free(sl_router *r);

/*
 * Adds a route. `pattern` is borrowed (copied). `value` is returned by a
 * match; the router never dereferences it. Returns 0, SL_EINVAL for a
 * malformed template (not starting with '/', empty or unclosed parameter,
 * too many segments or parameters), SL_EEXIST when the same method and
 * template are already routed, SL_ENOMEM.
 */
SL_API int sl_router_add(sl_router *r, sl_http_method method, const char *pattern,
                         const void *value) SL_MUST_CHECK;

/*
 * Matches `method` and `path` (the request path without query). On
 * SL_ROUTE_FOUND stores the route value in *value and the parameters in
 * *params. On SL_ROUTE_METHOD_NOT_ALLOWED stores in *allowed a bit mask
 * (1u << sl_http_method) of the methods the path accepts (HEAD included when
 * GET is). HEAD matches GET routes unless a HEAD route exists.
 */
SL_API sl_route_result sl_router_match(const sl_router *r, sl_http_method method, sl_slice path,
                                       const void **value, sl_route_params *params,
                                       unsigned *allowed);

/* Formats an allowed-methods mask as "GET, HEAD, POST" into out. Returns the length. */
SL_API size_t sl_router_allow_header(unsigned allowed, char *out, size_t cap);

/* Returns the value of parameter `name`, or an empty slice (ptr NULL) when absent. */
SL_API sl_slice sl_route_param(const sl_route_params *params, const char *name);

#endif /* SHOAL_ROUTER_H */
