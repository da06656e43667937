/*
 * The request pipeline's shared state and answers (request.c), below the
 * pipeline's stages (auth.c, aggregate.c, forward.c) and above the
 * generations:
 *
 *   px_proc    process-wide: logger, metrics, the other workers' published
 *              connection counts. Written by gateway.c before the workers
 *              start; read-only afterwards except its atomics.
 *   px_worker  what the pipeline uses of one loop thread: the shared host
 *              plumbing (serve.h), the current generation, the JWKS cache.
 *   px_req     one request's state, recycled per worker.
 *
 * Threading: a px_worker and its requests belong to the worker's loop thread.
 */
#ifndef SHOAL_PROXY_REQUEST_H
#define SHOAL_PROXY_REQUEST_H

#include "generation.h"
#include "headers.h"
#include "jwks.h"
#include "revoke.h"

#include <shoal/deadline.h>
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/identity.h>
#include <shoal/serve.h>

#include <stdatomic.h>

typedef struct px_agg px_agg; /* aggregate.h */

typedef struct px_proc {
    sl_logger *log;
    sl_metrics *metrics;
    sl_serve_families fam;
    sl_metric_family *rejected, *auth_fail;
    sl_metric_family *denied; /* mesh_policy_denied_total{caller,callee} (sidecar role) */
    /* gateway_subset_requests_total{cluster,version,class} and
     * gateway_subset_request_duration_seconds{cluster,version}: calls to version subsets */
    sl_metric_family *subset_req, *subset_dur;
    int nworkers;
    _Atomic size_t *connections; /* [worker]: published by each worker's tick for /metrics */
    _Atomic int stopping;
    _Atomic(struct px_scraper *) scraper; /* worker 0's (admin_services.h), or NULL */
} px_proc;

typedef struct px_worker {
    px_proc *proc;
    sl_serve_worker sw; /* index, server, tracer, ids, recycled px_req, series */
    uv_loop_t *loop;
    px_wgen *cur; /* never NULL while started */
    px_jwks jwks;
    px_revoke revoke;
    uint32_t in_flight;
    int started;
} px_worker;

/* The gateway's own operations, answered before routing. */
typedef enum px_op {
    PX_OP_NONE,
    PX_OP_HEALTHZ,
    PX_OP_READYZ,
    PX_OP_PREFLIGHT, /* a CORS preflight */
    PX_OP_STATIC,    /* a static file (static.h): sfile, ssite */
    PX_OP_REDIRECT,  /* a static directory asked for without its slash */
} px_op;

typedef struct px_req {
    px_worker *w;
    px_wgen *wg; /* a reference held until the response */
    sl_http_req *req;
    const px_route *route;
    int route_idx;
    int status; /* answer this at on_request (404/405/...), 0 = route */
    unsigned allowed;
    px_op op;
    sl_span *span;
    sl_route_params params;
    sl_identity id;
    int authed;
    sl_deadline deadline;
    sl_http_handle *call;
    px_agg *agg;
    const char *upstream_name;
    int upstream_status;
    int kid_retried; /* the JWKS was refetched for this request once already */
    char idem[256];  /* the client's Idempotency-Key, NUL-terminated */
    px_waiter wait;  /* parked in the JWKS cache */
    const px_static_file *sfile;
    const px_static_site *ssite;
    int verdict; /* sidecar inbound: the policy's px_policy_verdict */
    int subset;  /* the version subset of the forwarded call, or -1 */
    uint64_t subset_start_ns;
} px_req;

static inline const px_config *px_cfg(const px_req *r)
{
    return r->wg->gen->cfg;
}

/* Returns 1 when `origin` is allowed by the CORS configuration. */
int px_origin_allowed(const px_config *cfg, sl_slice origin);
/* Appends the CORS headers of an actual (non-preflight) response. Returns the new count. */
size_t px_cors_headers(const px_req *r, sl_http_header *h, size_t n, size_t cap);
/* Answers with a problem body, plus `extra` headers (at most 9), plus CORS. */
void px_respond_problem(px_req *r, int status, const char *detail, const sl_http_header *extra,
                        size_t nextra);
/* Answers with a problem body and Retry-After: retry_ms rounded up to seconds (at least 1). */
void px_respond_retry_after(px_req *r, int status, const char *detail, int64_t retry_ms);
/* Answers an upstream failure (kind, retry-after) as 502/503/504; `part` names an aggregate's. */
void px_respond_upstream_error(px_req *r, const sl_http_result *res, const char *part);

/* The headers of one upstream call: the client's filtered ones plus the signed identity. */
typedef struct px_out_headers {
    px_fwd_headers fwd;
    char proof[SL_IDENTITY_PROOF_MAX];
} px_out_headers;
/*
 * Builds the identity + forwarding headers for an upstream call of `r` to cluster `cluster`:
 * the proof is bound to that cluster's service, `method`, the full `target` (path and query as
 * sent), the Idempotency-Key the call sends and `body`.
 */
void px_build_headers(px_req *r, int cluster, sl_http_method method, sl_slice target, sl_slice body,
                      int forward_client, px_out_headers *out);
/* Fills the call options of an upstream call of `r` (deadline, trace, request id, idempotency). */
void px_call_opts(px_req *r, int64_t timeout_ms, sl_http_call_opts *o);

#endif
