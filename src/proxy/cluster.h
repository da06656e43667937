/*
 * Upstream clusters, the lowest layer of the gateway above its configuration
 * (cluster.c): one px_wcluster per (configured cluster, worker) wraps the
 * HTTP client's upstream with the gateway's endpoint choice, passive outlier
 * detection and, on worker 0, active health checks; a px_board per
 * generation publishes every worker's cluster state for /admin/clusters.
 *
 * Threading: a px_wcluster belongs to its worker's loop thread. A px_board is
 * written through atomics (health flags by worker 0, counters by each worker)
 * and read by the admin listener.
 *
 * This layer calls only the configuration and libshoal; what it needs from
 * its owner comes in px_cluster_env.
 */
#ifndef SHOAL_PROXY_CLUSTER_H
#define SHOAL_PROXY_CLUSTER_H

#include "gwconfig.h"

#include <shoal/http_client.h>
#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/trace.h>

#include <stdatomic.h>
#include <stdint.h>

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

/* The shared state of one configuration's clusters across the workers. */
typedef struct px_board {
    int nworkers;
    size_t total_eps;
    size_t ep_off[PX_CLUSTERS_MAX];
    _Atomic unsigned char *healthy; /* [ep_off[c] + e]: 1 healthy (active checks, worker 0) */
    px_pub_cluster *pub;            /* [c * nworkers + w] */
    px_pub_ep *pub_ep;              /* [w * total_eps + ep_off[c] + e] */
    /* the live split of clusters with subsets: [c * PX_SUBSETS_MAX + s], from the configuration,
     * changed by PUT /admin/clusters/{name}/split (px_board_set_split); every worker reads it */
    _Atomic uint32_t *weights;
} px_board;

/* Allocates `b`'s arrays for `cfg` and `nworkers` (every endpoint healthy). 0 or SL_ENOMEM. */
int px_board_init(px_board *b, const px_config *cfg, int nworkers);
/* Frees what px_board_init allocated (any state after it, even a failed one). */
void px_board_deinit(px_board *b);
/*
 * Applies a split document ({"split":[{"subset":"v1","weight":95},...]}, the subsets not named get
 * weight 0) to cluster `ci`. Returns 0, or an HTTP status (400, 404 no such subset or no subsets,
 * 422) with a message naming the field in `err` (256 bytes).
 */
int px_board_set_split(px_board *b, const px_config *cfg, size_t ci, const char *body, size_t len,
                       char *err);
/* Writes the /admin/clusters document. Returns owned (free) or NULL without memory. */
char *px_admin_clusters_doc(const px_config *cfg, const px_board *b, uint64_t generation,
                            size_t *len);

/* What a worker's clusters borrow from their owner. */
typedef struct px_cluster_env {
    uv_loop_t *loop;
    sl_rand *rand;
    sl_metrics *metrics; /* NULL: none */
    sl_logger *log;
    sl_tracer *tracer;
    int worker;
    px_board *board;
    /* Every close px_wcluster_close starts adds 1 to *pending and, when done, calls
     * closed(closed_data). */
    size_t *pending;
    void (*closed)(void *data);
    void *closed_data;
} px_cluster_env;

/* Per-worker state of one endpoint (loop thread). */
typedef struct px_ep_state {
    uint32_t in_flight;
    uint32_t c5xx, cconn; /* consecutive failures */
    uint32_t ejections;
    int64_t ejected_until_ms; /* monotonic ms; 0 = not ejected */
    uint64_t requests, failures;
} px_ep_state;

struct px_wcluster;
typedef struct px_subset_ctx {
    struct px_wcluster *c;
    int s;
} px_subset_ctx;

typedef struct px_wcluster {
    px_cluster_env env;
    int idx;
    const px_cluster_cfg *cfg;
    sl_upstream *up;
    px_ep_state eps[SL_UPSTREAM_ENDPOINTS_MAX];
    uint32_t rr;
    /* version subsets: one upstream per subset over its endpoints, so that retries stay in it */
    sl_upstream *sub_up[PX_SUBSETS_MAX];
    px_subset_ctx sub_ctx[PX_SUBSETS_MAX];
    uint32_t sub_rr[PX_SUBSETS_MAX];
    /* active health checks (worker 0 only): one policy-less upstream per endpoint */
    sl_upstream **hc;
    uint32_t *hc_ok, *hc_fail;
    uint8_t *hc_busy;
    uv_timer_t *hc_timer; /* NULL: none */
} px_wcluster;

/* Sets up cluster `idx` of `cfg` for one worker (env copied). 0 or an SL_E code. */
int px_wcluster_init(px_wcluster *c, const px_cluster_env *env, const px_config *cfg, int idx);
/*
 * The upstream for one request: with subsets, the chosen subset's (px_subset_choose over the live
 * split, this worker's endpoint states, the canary header and the user id) and *subset its index;
 * without, the cluster's and -1.
 */
sl_upstream *px_wcluster_choose(px_wcluster *c, bool canary_header, const char *user_id,
                                size_t user_id_len, int *subset);
/* Starts closing the cluster's upstreams and timers (counted in *env.pending). */
void px_wcluster_close(px_wcluster *c);
/* Copies this worker's counters and states into the board (the admin view). */
void px_wcluster_publish(px_wcluster *c);
/* Frees what px_wcluster_close left (after every close finished). */
void px_wcluster_free_arrays(px_wcluster *c);

#endif
