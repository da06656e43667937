/*
 * shoal-proxy's runtime structures, shared by its files:
 *
 *   px_gateway  process-wide: logger, metrics, workers, the current generation.
 *   px_gen      one loaded configuration ("generation"), refcounted with an
 *               atomic counter: the gateway holds one reference while it is
 *               current and each worker one while its px_wgen of it lives.
 *   px_worker   one loop thread: HTTP server, tracer, ids, JWKS cache, and
 *               its current px_wgen.
 *   px_wgen     a worker's instance of a generation: its upstreams (pools,
 *               breakers, bulkheads, budgets), balancers and rate limiters.
 *               Each request holds a reference; when a reload replaces it,
 *               it is closed once its last request finishes (docs/gateway.md,
 *               "Reload").
 *   px_req      one request's state, recycled per worker.
 *
 * Threading: a px_worker, its px_wgen and requests belong to the worker's
 * loop thread. px_gen is read-only after load except its published counters
 * (atomics written by the owning worker, read by the admin listener).
 */
#ifndef SHOAL_PROXY_GATEWAY_H
#define SHOAL_PROXY_GATEWAY_H

#include "gwconfig.h"
#include "headers.h"

#include <shoal/auth.h>
#include <shoal/deadline.h>
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/id.h>
#include <shoal/log.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/ratelimit.h>
#include <shoal/trace.h>

#include <pthread.h>
#include <stdatomic.h>

typedef struct px_gateway px_gateway;
typedef struct px_worker px_worker;
typedef struct px_gen px_gen;
typedef struct px_wgen px_wgen;
typedef struct px_req px_req;
typedef struct px_agg px_agg;

/* Published per (cluster, worker, endpoint): written by that worker, read by /admin/clusters. */
typedef struct px_pub_ep {
    _Atomic int ejected;
    _Atomic unsigned in_flight;
    _Atomic unsigned long long requests, failures;
} px_pub_ep;

typedef struct px_pub_cluster {
    _Atomic int breaker; /* sl_breaker_state */
    _Atomic unsigned long long requests, retries, breaker_rejections, bulkhead_rejections;
} px_pub_cluster;

struct px_gen {
    atomic_int refs;
    uint64_t id;
    px_config *cfg;
    int nworkers;
    size_t total_eps;
    size_t ep_off[PX_CLUSTERS_MAX];
    _Atomic unsigned char *healthy; /* [ep_off[c] + e]: 1 healthy (active checks, worker 0) */
    px_pub_cluster *pub;            /* [c * nworkers + w] */
    px_pub_ep *pub_ep;              /* [w * total_eps + ep_off[c] + e] */
    /* Rate limiters are per generation, shared by the workers under rl_mu, so a client's
     * limit holds whichever worker its connections land on. */
    pthread_mutex_t rl_mu;
    sl_ratelimit *client_rl;
    sl_ratelimit **route_rl; /* [route index], NULL when the route has no limit */
};

/* Creates a generation owning `cfg` (refs = 1). Returns NULL without memory (cfg is freed). */
px_gen *px_gen_new(px_config *cfg, int nworkers, uint64_t id);
void px_gen_ref(px_gen *g);
void px_gen_unref(px_gen *g);

/* Per-worker state of one endpoint (loop thread). */
typedef struct px_ep_state {
    uint32_t in_flight;
    uint32_t c5xx, cconn; /* consecutive failures */
    uint32_t ejections;
    int64_t ejected_until_ms; /* monotonic ms; 0 = not ejected */
    uint64_t requests, failures;
} px_ep_state;

typedef struct px_wcluster {
    px_wgen *wg;
    int idx;
    const px_cluster_cfg *cfg;
    sl_upstream *up;
    px_ep_state eps[SL_UPSTREAM_ENDPOINTS_MAX];
    uint32_t rr;
    /* active health checks (worker 0 only): one policy-less upstream per endpoint */
    sl_upstream **hc;
    uint32_t *hc_ok, *hc_fail;
    uint8_t *hc_busy;
    uv_timer_t *hc_timer; /* NULL: none */
} px_wcluster;

struct px_wgen {
    px_worker *w;
    px_gen *gen;
    px_wcluster *clusters;
    size_t refs; /* requests + 1 while current */
    int closing;
    size_t closing_pending; /* upstreams and handles still closing */
};

/* The JWKS cache of one worker. */
typedef struct px_jwks {
    sl_keyset *ks; /* NULL until the first successful fetch */
    int fetching;
    int64_t last_fetch_ms; /* monotonic, start of the last fetch */
    int64_t last_ok_ms;
    uv_timer_t refresh;
    px_req *waiters, *waiters_tail;
    uint32_t nwaiters;
    uint64_t fetches, failures;
} px_jwks;

#define PX_MAX_STATUS 600

struct px_worker {
    px_gateway *gw;
    sl_worker *rw;
    int index;
    uv_loop_t *loop;
    sl_http_server *http, *admin;
    uv_async_t async;
    int async_on;
    _Atomic(px_gen *) mailbox; /* a new generation for this worker (owned reference) */
    px_wgen *cur;
    sl_tracer *tracer;
    sl_rand rand;
    sl_idgen idgen;
    uv_timer_t tick;
    uint32_t in_flight;
    _Atomic size_t connections; /* published by the tick for /metrics */
    px_jwks jwks;
    px_req *free_reqs;
    size_t nfree;
    sl_series *req_series[SL_HTTP_METHOD_COUNT][PX_MAX_STATUS];
    sl_series *dur_series[SL_HTTP_METHOD_COUNT];
    int started;
};

struct px_gateway {
    sl_logger *log;
    sl_metrics *metrics;
    sl_metric_family *req_total, *req_duration, *connections, *rejected, *auth_fail, *reloads;
    px_worker *w;
    int nworkers;
    _Atomic(px_gen *) current;
    atomic_ullong next_id;
    const char *config_path;
    char *const *envp;
    px_config *boot; /* listener settings fixed at start (the first generation's config) */
    int admin_fd, admin_port;
    int port;
    _Atomic int stopping;
    pthread_mutex_t mu; /* guards every worker's async_on against uv_async_send after close */
};

struct px_req {
    px_worker *w;
    px_wgen *wg;
    sl_http_req *req;
    const px_route *route;
    int route_idx;
    int status; /* answer this at on_request (404/405/...), 0 = route */
    unsigned allowed;
    int ops; /* 1 healthz, 2 readyz, 3 metrics, 4 CORS preflight */
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
    px_req *next;    /* free list, JWKS waiters */
};

/* ---- gateway.c ---- */
/*
 * Runs the gateway: loads `config_path` (NULL: defaults) with `envp`
 * overrides, binds, serves until SIGTERM/SIGINT, reloads on SIGHUP.
 * `workers` / `port` override the file when >= 1 / >= 0. Returns the exit
 * status: 0 clean stop, 1 runtime failure, 2 configuration error.
 */
int px_gateway_run(const char *config_path, char *const *envp, int workers, int port);
px_wgen *px_wgen_current(px_worker *w); /* takes a reference */
void px_wgen_unref(px_wgen *wg);
/* Close callback of a wgen's upstreams and handles (data = the px_wgen). */
void px_wgen_closed_one(void *data);

/* ---- cluster.c ---- */
int px_wcluster_init(px_wcluster *c, px_wgen *wg, int idx);
/* Starts closing the cluster's upstreams and timers; wg->closing_pending counts them. */
void px_wcluster_close(px_wcluster *c);
/* Copies this worker's counters and states into gen->pub* (the admin view). */
void px_wcluster_publish(px_wcluster *c);
/* Frees what px_wcluster_close left (after every close finished). */
void px_wcluster_free_arrays(px_wcluster *c);
/* Writes the /admin/clusters document of `g`. Returns owned (free) or NULL. */
char *px_admin_clusters_doc(const px_gen *g, size_t *len);

/* ---- forward.c ---- */
int px_on_headers(sl_http_req *req, void *data);
void px_on_request(sl_http_req *req, void *data);
void px_on_response(sl_http_req *req, int status, size_t body_len, void *data);
/* Continues a request parked for the JWKS (after a fetch finished). */
void px_resume(px_req *r);
/* Answers an upstream failure (kind, retry-after) as 502/503/504 with a problem body. */
void px_respond_upstream_error(px_req *r, const sl_http_result *res, const char *part);
/* Builds the identity + forwarding headers for an upstream call of `r` to `path`. */
typedef struct px_out_headers {
    px_fwd_headers fwd;
    char proof[SL_IDENTITY_PROOF_MAX];
} px_out_headers;
void px_build_headers(px_req *r, sl_http_method method, sl_slice path, int forward_client,
                      px_out_headers *out);
void px_call_opts(px_req *r, int64_t timeout_ms, sl_http_call_opts *o);

/* ---- jwks.c ---- */
void px_jwks_init(px_worker *w);
void px_jwks_close(px_worker *w);
/* Starts a fetch unless one runs or the last started less than min_refetch_ms ago. */
void px_jwks_fetch(px_worker *w, int forced);
/* Parks `r` until the running fetch ends. Returns 0, or SL_ELIMIT when too many wait. */
int px_jwks_wait(px_worker *w, px_req *r);

/* ---- aggregate.c ---- */
void px_aggregate_start(px_req *r, const px_aggregate_cfg *a);
void px_agg_free(px_agg *g);

#endif
