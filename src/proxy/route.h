/*
 * Gateway routing: an ordered table of routes matched by method, path
 * (exact, prefix or template) and headers; the first match wins, as in the
 * configuration's order. A match yields the route and the template's
 * parameters, and the route rewrites the path for its upstream. Pure.
 */
#ifndef SHOAL_PROXY_ROUTE_H
#define SHOAL_PROXY_ROUTE_H

#include <shoal/http_types.h>
#include <shoal/router.h>

#include <stddef.h>
#include <stdint.h>

#define PX_ROUTE_HEADERS_MAX 4
#define PX_PATH_MAX          2048

typedef enum px_match_kind { PX_MATCH_EXACT, PX_MATCH_PREFIX, PX_MATCH_TEMPLATE } px_match_kind;

typedef enum px_auth { PX_AUTH_PUBLIC, PX_AUTH_AUTHENTICATED, PX_AUTH_ADMIN } px_auth;

/* A route the gateway answers itself (admin_services.h) instead of a cluster or an aggregate. */
typedef enum px_handler {
    PX_HANDLER_NONE,
    PX_HANDLER_ADMIN_SERVICES,
    PX_HANDLER_ADMIN_DLQ
} px_handler;

typedef struct px_header_match {
    char *name;  /* case-insensitive */
    char *value; /* exact value, or NULL: present with any value */
} px_header_match;

typedef struct px_route {
    char *name;
    unsigned methods; /* bit mask (1u << sl_http_method); 0 = any method */
    px_match_kind kind;
    char *path; /* exact path, prefix, or template ("/orders/{id}") */
    /* template, split at '/': literal segments or parameters */
    char *segs[SL_ROUTER_MAX_SEGMENTS];
    int seg_param[SL_ROUTER_MAX_SEGMENTS];
    size_t nsegs;
    px_header_match headers[PX_ROUTE_HEADERS_MAX];
    size_t nheaders;
    char *rewrite; /* exact/template: new path, may use {param}; prefix: replaces the prefix */
    px_auth auth;
    char *owner_param;  /* template parameter that must equal the caller (or admin) */
    int cluster;        /* index into the gateway's clusters, or -1 */
    int aggregate;      /* index into the gateway's aggregates, or -1 */
    px_handler handler; /* PX_HANDLER_NONE: the cluster or the aggregate */
    uint32_t timeout_ms;
    uint32_t rate; /* per-client requests per second on this route; 0 = none */
    uint32_t burst;
    size_t body_max_bytes;
    void *data; /* for the gateway */
} px_route;

typedef struct px_routes {
    px_route *items;
    size_t n, cap;
} px_routes;

/* Parses "/a/{b}/c" into r's segments. Returns 0 or SL_EINVAL (bad template). */
int px_route_compile(px_route *r);

/*
 * Finds the first route matching method, path (without query) and headers.
 * Returns it, with template parameters in *params, or NULL. When no route
 * matches the method but one matches the path, *allowed gets the methods
 * that would (for 405), else 0.
 */
const px_route *px_routes_match(const px_routes *t, sl_http_method method, sl_slice path,
                                const sl_http_header *headers, size_t nheaders,
                                sl_route_params *params, unsigned *allowed);

/*
 * Writes the upstream target for `r` into out (cap bytes): the rewritten
 * path ({param} substituted with the raw captured values; a prefix route
 * replaces its prefix) followed by "?" and `query` when not empty. Returns
 * the length, or SL_ELIMIT when it does not fit.
 */
int px_route_target(const px_route *r, sl_slice path, sl_slice query, const sl_route_params *params,
                    char *out, size_t cap);

/* Frees the strings a route owns. */
void px_route_free(px_route *r);

#endif
