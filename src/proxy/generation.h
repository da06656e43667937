/*
 * Configuration generations (generation.c), above the clusters:
 *
 *   px_gen   one loaded configuration, refcounted with an atomic counter:
 *            the gateway holds one reference while it is current and each
 *            worker one while its px_wgen of it lives. Read-only after load
 *            except its board (cluster.h) and its rate limiters (under rl_mu).
 *   px_wgen  a worker's instance of a generation: its clusters (pools,
 *            breakers, bulkheads, budgets, balancers). Each request holds a
 *            reference; when a reload replaces it, it is closed once its
 *            last request finishes (docs/gateway.md, "Reload"). Loop thread.
 */
#ifndef SHOAL_PROXY_GENERATION_H
#define SHOAL_PROXY_GENERATION_H

#include "cluster.h"
#include "gwconfig.h"

#include <shoal/ratelimit.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct px_gen {
    atomic_int refs;
    uint64_t id;
    px_config *cfg;
    px_board board;
    /* Rate limiters are per generation, shared by the workers under rl_mu, so a client's
     * limit holds whichever worker its connections land on. */
    pthread_mutex_t rl_mu;
    sl_ratelimit *client_rl;
    sl_ratelimit **route_rl; /* [route index], NULL when the route has no limit */
} px_gen;

/* Creates a generation owning `cfg` (refs = 1). Returns NULL without memory (cfg is freed). */
px_gen *px_gen_new(px_config *cfg, int nworkers, uint64_t id);
void px_gen_ref(px_gen *g);
/* Drops one reference (NULL is ignored); the last frees the generation and its cfg. */
void px_gen_unref(px_gen *g);

typedef struct px_wgen {
    px_gen *gen;
    px_wcluster *clusters; /* [gen->cfg->nclusters] */
    size_t refs;           /* requests + 1 while current */
    int closing;
    size_t closing_pending; /* upstreams and handles still closing */
} px_wgen;

/* What a worker lends its generations' clusters (px_cluster_env without the board and close). */
typedef struct px_wgen_env {
    uv_loop_t *loop;
    sl_rand *rand;
    sl_metrics *metrics;
    sl_logger *log;
    sl_tracer *tracer;
    int worker;
} px_wgen_env;

/*
 * Builds a worker's instance of `g`, taking over one reference of g (released
 * on failure too). Returns 0 and *out (refs = 1), or an SL_E code.
 */
int px_wgen_new(px_gen *g, const px_wgen_env *env, px_wgen **out);
/* Takes a reference (a request, a JWKS fetch) and returns wg. */
px_wgen *px_wgen_hold(px_wgen *wg);
/* Drops a reference; the last starts closing the clusters, then frees wg. */
void px_wgen_unref(px_wgen *wg);

#endif
